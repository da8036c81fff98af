"""Which robust models chapter 5 samples from (one job).

The chapter's own robust model (`robust_run_for`): the committed reference run (`runs.reference_run`,
`config.REFERENCE_TRAINING`: SAT on the small CNN with all CIFAR-10 training images, trained by
`make reference`) when `GenerationConfig.use_reference` is on (every profile but `paper`), the run
is there, finished, and it fits the chapter (same dataset and `robust_method`); otherwise the run of
the chapter's profile, trained or loaded with `runs.train_or_load` (a CPU-sized one for smoke and
default, the paper's ResNet-18 for paper). `describe` is the sentence the chapter shows: which model,
how it was trained (`runs.describe`), how to retrain it. `other_robust_runs`: more finished
multi-step runs of the run store, best first.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import runs
from .config import REFERENCE_TRAINING, GenerationConfig, TrainConfig

REFERENCE_REMAKE = "make reference"   # the Makefile target that trains (or resumes) the reference run


@dataclass(frozen=True)
class RobustChoice:
    """The run chapter 5 uses as its robust model, where it came from ("reference" or "profile")
    and, for the profile's run, why the reference was not used."""

    run: runs.Run
    source: str
    why_not_reference: str = ""

    @property
    def label(self) -> str:
        """The model's name in the chapter's tables and figures (starts with "robust")."""
        c = self.run.config
        return f"robust ({c.method.upper()}, {c.model}{', reference run' if self.source == 'reference' else ''})"


def _reference_misfit(cfg: GenerationConfig) -> str:
    """Why the reference run cannot serve this config ("" when it can)."""
    if not cfg.use_reference:
        return "use_reference=False (the paper profile trains the paper's ResNet-18 instead)"
    wanted = {"dataset": ("dataset", cfg.dataset), "method": ("robust_method", cfg.robust_method)}
    differ = [f"{field}={value}" for k, (field, value) in wanted.items() if REFERENCE_TRAINING[k] != value]
    if differ:
        return (f"the reference run is {REFERENCE_TRAINING['method']} on {REFERENCE_TRAINING['dataset']} and this "
                f"chapter asks for {', '.join(differ)}")
    return ""


def robust_run_for(cfg: GenerationConfig, profile: str, *, progress: bool = False) -> RobustChoice:
    """The reference run when `cfg.use_reference`, it fits and `runs.reference_run()` finds it
    finished; else the profile's run (`TrainConfig.from_profile(profile, method=cfg.robust_method)`),
    trained now when the run store does not hold it finished."""
    why = _reference_misfit(cfg)
    if not why:
        reference = runs.reference_run()
        if reference is not None:
            return RobustChoice(reference, "reference")
        why = (f"the reference run is not in {_shown(runs.reference_root())} (it is trained by {REFERENCE_REMAKE} and "
               "committed there)")
    train_cfg = TrainConfig.from_profile(profile, method=cfg.robust_method, dataset=cfg.dataset, device=cfg.device)
    return RobustChoice(runs.train_or_load(train_cfg, progress=progress), "profile", why)


def _shown(path: Path) -> str:
    """A path as the book shows it: relative to the repository when inside it."""
    path = Path(path)
    return str(path.relative_to(runs.REPO)) if path.is_relative_to(runs.REPO) else str(path)


def describe(choice: RobustChoice, profile: str) -> str:
    """Which robust model the chapter uses, how it was trained (`runs.describe`, the book's one
    phrase for it) and its selected epoch's accuracies: plain text (no markdown), glued into the
    chapter's prose (how to retrain a run is the README's, not the reader's)."""
    run, c = choice.run, choice.run.config
    chosen = runs.selected_metrics(run)   # the epoch best.pt holds: the model the chapter loads
    accuracy = (f"its best.pt (epoch {int(chosen['epoch'])} of {c.epochs}) has clean / PGD test accuracy {chosen['test_acc_nat']:.0%} / {chosen['test_acc_adv']:.0%} "
                f"on the first {c.n_test_track:,} test images")
    training = runs.describe(run, reference_note=False)   # the reference run is named below
    if choice.source == "reference":   # prose for a reader: no config dump, no run hash
        return f"the committed reference run: {training}; {accuracy}"   # the prose says how it is kept
    return (f"this chapter's own run, trained (or loaded from the run store) with the {profile} training profile "
            f"because {choice.why_not_reference}: {training}; {accuracy}")


def other_robust_runs(cfg: GenerationConfig, own: runs.Run | None) -> list[runs.Run]:
    """Up to `cfg.other_robust_runs` more finished multi-step runs on the dataset (the reference run
    included), best first by their validation PGD accuracy, never `own`."""
    own_dir = own.dir.resolve() if own is not None else None
    found = runs.robust_runs(runs.finished_runs(), cfg.dataset)
    return [r for r in found if r.dir.resolve() != own_dir][:cfg.other_robust_runs]
