"""Parameter layering: defaults < profile < explicit values (the notebook/CLI contract)."""
import pytest
import torch

from energy_lib.config import (AttackEnergyConfig, ConfigError, GenerationConfig, LensConfig, TrainConfig, WeatDerConfig,
                               check_eps, resolve_device)


def test_default_profile_is_the_dataclass_defaults():
    assert AttackEnergyConfig.from_profile("default") == AttackEnergyConfig()


def test_profile_overrides_defaults_and_explicit_values_override_profile():
    smoke = AttackEnergyConfig.from_profile("smoke")
    assert smoke.n_images == AttackEnergyConfig.PROFILES["smoke"]["n_images"] != AttackEnergyConfig().n_images
    explicit = AttackEnergyConfig.from_profile("smoke", n_images=33)
    assert explicit.n_images == 33 and explicit.steps == smoke.steps
    forced = AttackEnergyConfig.from_profile("smoke", overrides={"n_images": AttackEnergyConfig().n_images})
    assert forced.n_images == AttackEnergyConfig().n_images


def test_an_explicit_value_wins_even_when_it_equals_the_default():
    # `papermill -p profile smoke -p n_images 64` must give 64 images, the default-profile value
    assert AttackEnergyConfig.from_profile("smoke", n_images=AttackEnergyConfig().n_images).n_images == 64
    ns = {"profile": "paper", "batch_size": AttackEnergyConfig().batch_size}
    assert AttackEnergyConfig.from_namespace(ns).batch_size == AttackEnergyConfig().batch_size


def test_from_namespace_reads_notebook_globals_and_none_means_the_profile():
    ns = {"profile": "paper", "device": "cpu", "steps": 7, "n_images": None, "unrelated": 1}
    cfg = AttackEnergyConfig.from_namespace(ns)
    assert cfg.device == "cpu" and cfg.steps == 7
    assert cfg.n_images == AttackEnergyConfig.PROFILES["paper"]["n_images"]


@pytest.mark.parametrize("chapter,config", [
    ("01_attack_energies", AttackEnergyConfig), ("02_at_phases", TrainConfig), ("03_trades_ebm", TrainConfig),
    ("04_weat_der", WeatDerConfig), ("05_generation", GenerationConfig), ("06_smooth_landscape", LensConfig)])
def test_parameters_cells_leave_config_fields_to_the_profile(repo_root, chapter, config):
    """Every config field in a chapter's parameters cell is None (= the profile decides); a typo
    would silently do nothing, so every None-valued name must be a field of the chapter's config."""
    import ast
    import json

    nb = json.loads((repo_root / "book" / f"{chapter}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    assigned = {node.targets[0].id: ast.literal_eval(node.value) if isinstance(node.value, ast.Constant) else ...
                for node in ast.parse("".join(cell["source"])).body if isinstance(node, ast.Assign)}
    assert assigned["profile"] == "default" and assigned["device"] == "auto"
    fields = set(config.field_names())
    for name, value in assigned.items():
        if value is None:
            assert name in fields, f"{chapter}: parameter {name!r} is not a {config.__name__} field"
        else:
            assert name in ("profile", "device") or name not in fields, (
                f"{chapter}: {name} = {value!r} would override every profile; set it to None")
    # with nothing injected, the notebook gets exactly the profile
    ns = {k: v for k, v in assigned.items() if v is not ...}
    assert config.from_namespace({**ns, "profile": "smoke"}) == config.from_profile("smoke")


def test_attack_energy_config_rejects_bad_values():
    for bad, word in ((dict(eps=2.0), "outside"), (dict(eps=0.0), "positive"), (dict(dataset="mnist"), "unknown"),
                      (dict(n_images=0), "positive"), (dict(steps=-1), "positive"),
                      (dict(eps_grid=(8 / 255, 16.0)), "outside")):
        with pytest.raises(ConfigError, match=word):
            AttackEnergyConfig(**bad)


def test_unknown_names_fail_clearly():
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        AttackEnergyConfig.from_profile("fast")
    with pytest.raises(ConfigError, match="no parameter"):
        AttackEnergyConfig.from_profile("default", n_imgs=3)


def test_round_trip_through_dict():
    cfg = AttackEnergyConfig.from_profile("smoke")
    assert AttackEnergyConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("eps", [-0.1, 1.5, 8])
def test_eps_out_of_range(eps):
    with pytest.raises(ConfigError, match="outside \\[0, 1\\]"):
        check_eps(eps)


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_the_name_registries_config_checks_against_are_the_implementations():
    """config.py checks names against names.py (a leaf); the modules that implement them agree."""
    from energy_lib import data, losses, models, names

    assert names.MODEL_NAMES == tuple(models.MODELS) and names.METHOD_NAMES == tuple(losses.LOSSES)
    assert data.DATASETS is names.DATASETS and set(names.METHOD_USES) == set(losses.TRAINING_ATTACKS)
    for bad in (dict(method="sat2"), dict(model="resnet19"), dict(dataset="mnist")):
        with pytest.raises(ConfigError, match="unknown"):
            TrainConfig(**bad)


def test_training_step_rule_keeps_the_paper_and_lets_few_steps_reach_eps():
    """Defect 1 of issue 10: step_size=None is the rule max(2/255, 2.5·ε/K), resolved in the config
    and stored resolved; the paper profile keeps 10 steps of exactly 2/255."""
    from energy_lib.config import training_step_rule

    paper = TrainConfig.from_profile("paper")
    assert (paper.attack_steps, paper.step_size) == (10, 2 / 255)
    for profile in ("smoke", "default"):
        cfg = TrainConfig.from_profile(profile)
        assert cfg.attack_steps < 10 and cfg.step_size == pytest.approx(2.5 * cfg.eps / cfg.attack_steps)
        assert cfg.to_dict()["step_size"] == cfg.step_size                    # stored resolved
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert training_step_rule(4 / 255, 10) == 2 / 255 and training_step_rule(8 / 255, 0) == 2 / 255
    assert TrainConfig(step_size=1 / 255).step_size == 1 / 255                # an explicit step wins
    assert TrainConfig.from_profile("smoke", step_size=2 / 255).step_size == 2 / 255


def test_a_rule_derived_step_follows_later_changes_and_an_explicit_one_does_not():
    cfg = TrainConfig.from_profile("default")
    assert cfg.replace(attack_steps=1).step_size == pytest.approx(2.5 * cfg.eps)
    assert cfg.replace(attack_steps=10).step_size == 2 / 255
    assert cfg.replace(eps=16 / 255).track_step_size == pytest.approx(max(4 / 255, 2.5 * 16 / 255 / 5))
    explicit = cfg.replace(step_size=1 / 255)
    assert explicit.replace(attack_steps=1).step_size == 1 / 255
    # the chapter-4 path: a profile, then the chapter's steps: the rule sees the final steps
    weat = WeatDerConfig.from_profile("default").train_config("trades", "default")
    assert weat.step_size == pytest.approx(2.5 * weat.eps / weat.attack_steps)


def test_single_step_mode_is_a_checked_field_with_the_literatures_default():
    assert TrainConfig().single_step_mode == "train"
    assert TrainConfig(single_step_mode="eval").single_step_mode == "eval"
    with pytest.raises(ConfigError, match="single_step_mode='batch'.*train, eval"):
        TrainConfig(single_step_mode="batch")
    with pytest.raises(ConfigError, match="track_attack_restarts must be positive"):
        TrainConfig(track_attack_restarts=0)


@pytest.mark.parametrize("profile", ["smoke", "default", "paper"])
def test_chapter4_trains_the_runs_of_chapters_2_and_3(repo_root, profile):
    """One shared set of runs (issue 10): chapter 4's TrainConfig of a method is chapter 2's (its
    parameters cell read as papermill leaves it, then `replace(method=...)`), so the run store
    trains SAT and TRADES once."""
    import ast
    import json

    from energy_lib.runs import run_dir

    nb = json.loads((repo_root / "book" / "02_at_phases.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", []))
    namespace = {}
    exec(compile(ast.parse("".join(cell["source"])), "parameters", "exec"), namespace)
    chapter2 = TrainConfig.from_namespace({**namespace, "profile": profile})
    weat = WeatDerConfig.from_profile(profile)
    for method in weat.methods:
        ours = weat.train_config(method, profile)
        assert ours == chapter2.replace(method=method)
        assert run_dir(ours.canonical()) == run_dir(chapter2.replace(method=method).canonical())
    # a chapter-4 override still reaches its TrainConfig (and so gives other runs)
    assert WeatDerConfig.from_profile(profile, epochs=3).train_config("sat", profile).epochs == 3


def test_papermill_reads_every_parameter_of_every_chapter(repo_root):
    """papermill must see each name of a parameters cell (it silently drops a line it cannot parse,
    e.g. one whose comment holds ' = ', and `-p name value` then still works but `--help-notebook`
    and the injected-cell logic do not know the name)."""
    import ast
    import json

    from papermill.translators import PythonTranslator

    for path in sorted((repo_root / "book").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        cells = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
        if not cells:
            continue
        source = "".join(cells[0]["source"])
        assigned = [node.targets[0].id for node in ast.parse(source).body if isinstance(node, ast.Assign)]
        seen = [p.name for p in PythonTranslator.inspect({"source": source})]
        assert seen == assigned, f"{path.name}: papermill cannot parse {sorted(set(assigned) - set(seen))}"
