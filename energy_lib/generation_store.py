"""Chapter 5's expensive results, computed once and then read back from the run store.

One job: key, store and reuse what `book/05_generation.ipynb` computes slowly. A re-executed
chapter whose results exist reads them instead of sampling and scoring again. Everything lives in
the chapter's folder `<run store>/generation/<dataset>-<config hash>/` (`GenerationStore.dir`):

    config.json                          the GenerationConfig (the folder's identity)
    pca-<key>.json                       principal components kept per class (the PCA fits)
    energies-<key>.pt                    Ē_y of one model (reference energies of real images)
    samples-<init>[-adaptive]-<key>.pt   the SGLD chains of one model and initialisation: x_0, final
                                         samples, energies, stop steps, trace, frames, p(y|x), seconds
    fidelity-<init>[-adaptive]-<key>.json  the FID/KID/IS record of those samples (metrics.fidelity)

Keys (sha256 of a JSON description, stored in the file, whole in the .pt and pca files, as its
sha256 in a fidelity record's `scored.store_key`, and compared on every read; the file name only
carries its first characters) hold everything the result depends on, so a stale result cannot be
reused:
* every result: `STORE_VERSION`, the whole GenerationConfig and the digest of the code that computes
  it (`CODE_FILES`: PCA fits generate.py; Ē_y and chains generate.py and energy.py; FID/KID/IS
  metrics/fidelity.py; `code_digest` hashes their syntax trees without docstrings, so a comment or
  docstring edit keeps the results and a code edit recomputes them);
* the model by the sha256 of its weights (`model_digest`: every tensor of its state_dict), so a
  retrained or replaced model (another run, a new best.pt) is a different key whatever its name;
* the initialisation by its kind, adaptive stopping on/off, and the digest of the fitted class
  images and settings of the `Initializer` (`initializer_digest`); adaptive chains also by the
  digest of the Ē_y they stop at;
* reference energies by the digest of the real images they average;
* a fidelity record by the digest of the uint8 images scored, of the reference images, the
  Inception weights (source, file name and size), the config (KID settings) and the row's labels.
Not covered by a digest: the model's architecture code (models.py) and `attacks.predict_logits` (the
stored p(y|x)). Bump `STORE_VERSION` when a change there, or in this file, changes the numbers.

Every file is written atomically (`fileio`) and carries the digest of its content (`fileio` seals
it; torch files load with `weights_only=True`, so none can run code). These files are caches: one
that cannot be read (truncated, not a torch/JSON file), whose content differs from its digest (a
changed byte: torch's zip reader checks none), that carries no digest (another version) or holds
another key is recomputed and rewritten, with a warning naming the file; never used.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from . import fileio, generate
from .attacks import predict_logits
from .config import GenerationConfig
from .metrics import fidelity as fid_metrics
from .provenance import PACKAGE_DIR, code_digest  # noqa: F401  (PACKAGE_DIR: the tests edit copies)

STORE_VERSION = 1
# kind of result -> the modules whose code computes it (paths relative to the energy_lib package);
# a fidelity record's samples enter its key by their digest, so only the scoring code counts there
CODE_FILES = {"pca": ("generate.py",), "energies": ("generate.py", "energy.py"),
              "samples": ("generate.py", "energy.py"), "fidelity": ("metrics/fidelity.py",)}
# GenerationConfig fields that shape the chains (kept in each fidelity record's `scored.sampler`).
SAMPLER_FIELDS = ("steps", "step_size", "noise_std", "noise_alpha", "momentum", "step_clip", "retained_variance",
                  "pca_sigma", "local_k", "seed")


# ----------------------------------------------------------------------------- digests
def _update(h, t: torch.Tensor) -> None:
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}:{tuple(t.shape)};".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def tensor_digest(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for t in tensors:
        _update(h, t)
    return h.hexdigest()


def model_digest(model: torch.nn.Module) -> str:
    """sha256 of every tensor of the model's state_dict (names, dtypes, shapes, values): the
    model's identity, whatever run, file or name it came from."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        _update(h, t)
    return h.hexdigest()


def initializer_digest(init: generate.Initializer) -> str:
    """sha256 of the class images an Initializer was fitted on and its settings."""
    h = hashlib.sha256(json.dumps({"retained_variance": init.retained_variance, "pca_sigma": init.pca_sigma,
                                   "local_k": init.local_k, "gaussian_jitter": init.gaussian_jitter}).encode())
    for images in init.images:
        _update(h, images)
    return h.hexdigest()


# ----------------------------------------------------------------------------- results
@dataclass
class StoredSamples:
    """One (model, initialisation) setting: x_0, the SGLD result (with `p_y` = p(y|x) of the final
    samples), the seconds its sampling took when computed, and whether it was read from the store."""

    x0: torch.Tensor
    result: generate.SGLDResult
    seconds: float
    reused: bool
    path: Path


def balanced_order(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Indices of class-ordered chains taken round-robin over the classes (one of each class, then
    the next of each, ...): any prefix is class-balanced. Needs equally many chains per class."""
    return torch.stack([torch.nonzero(y == c).flatten() for c in range(num_classes)], 1).flatten()


def _setting_name(kind: str, adaptive: bool) -> str:
    return f"{kind}{'-adaptive' if adaptive else ''}"


class GenerationStore:
    """The chapter's folder of results for one GenerationConfig (see the module docstring).

    `reused` / `computed` list the files read back / (re)computed by this object, for the chapter's
    note on what this execution recomputed."""

    def __init__(self, directory: Path, cfg: GenerationConfig):
        self.dir, self.cfg = Path(directory), cfg
        self.reused: list[Path] = []
        self.computed: list[Path] = []
        fileio.make_dir(self.dir)
        for tmp in fileio.clean_stale_temporaries(self.dir):
            warnings.warn(f"removed {tmp}, left by an interrupted write", stacklevel=2)
        path = self.dir / "config.json"
        text = cfg.to_json() + "\n"
        if not path.is_file() or path.read_text() != text:
            fileio.atomic_write_text(path, text)

    @classmethod
    def for_config(cls, cfg: GenerationConfig, root: Path) -> "GenerationStore":
        """The store of `cfg` under `<root>/generation/<dataset>-<sha256 of the config>[:10]/`."""
        cfg_hash = hashlib.sha256(cfg.to_json().encode()).hexdigest()[:10]
        return cls(Path(root) / "generation" / f"{cfg.dataset}-{cfg_hash}", cfg)

    # -- keys and files (digests are taken at every call: a model changed in place is a new key)
    def model_key(self, model: torch.nn.Module) -> str:
        return model_digest(model)

    def _key(self, what: str, **parts) -> tuple[str, str]:
        """(the key's JSON text, its sha256)."""
        text = json.dumps({"version": STORE_VERSION, "code": code_digest(CODE_FILES[what]), "what": what,
                           "config": self.cfg.to_dict(), **parts}, sort_keys=True)
        return text, hashlib.sha256(text.encode()).hexdigest()

    def _unusable(self, path: Path, why: str) -> None:
        warnings.warn(f"{path}: {why}; it is a cache of this chapter's results: recomputed and rewritten",
                      stacklevel=3)

    def _read_torch(self, path: Path, key: str) -> dict | None:
        """The stored dict of `path` when it holds `key`; None (recompute) when absent or unusable."""
        if not path.is_file():
            return None
        try:
            obj = fileio.load_torch(path, fix="recomputed", sealed=True)
        except fileio.CorruptFileError as err:
            self._unusable(path, f"unreadable ({err})")
            return None
        if not isinstance(obj, dict) or obj.get("key") != key:
            self._unusable(path, "it holds another result than its name says (its stored key differs)")
            return None
        self.reused.append(path)
        return obj

    def _write_torch(self, path: Path, key: str, values: dict) -> None:
        fileio.atomic_torch_save({"key": key, **values}, path, seal=True)
        self.computed.append(path)

    # -- PCA fits
    def pca_components(self, init: generate.Initializer, num_classes: int) -> list[int]:
        """Principal components kept per class by `init`'s PCA (the fits are the slow part)."""
        key, digest = self._key("pca", init=initializer_digest(init), num_classes=num_classes)
        path = self.dir / f"pca-{digest[:16]}.json"
        if path.is_file():
            try:
                stored = fileio.read_json(path, sealed=True)
                if isinstance(stored, dict) and stored.get("key") == key:
                    self.reused.append(path)
                    return [int(k) for k in stored["kept"]]
                self._unusable(path, "it holds another result than its name says (its stored key differs)")
            except (fileio.CorruptFileError, KeyError, TypeError, ValueError) as err:
                self._unusable(path, f"unreadable ({err})")
        kept = [init.pca(c).n_components for c in range(num_classes)]
        fileio.write_json(path, {"key": key, "kept": kept}, seal=True)
        self.computed.append(path)
        return kept

    # -- reference energies
    def reference_energies(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                           num_classes: int) -> torch.Tensor:
        """`generate.reference_energies` (Ē_y per class) of `model` on the real images (x, y), stored."""
        key, digest = self._key("energies", model=self.model_key(model), images=tensor_digest(x, y),
                                num_classes=num_classes)
        path = self.dir / f"energies-{digest[:16]}.pt"
        stored = self._read_torch(path, key)
        if stored is not None:
            return stored["energy"]
        energy = generate.reference_energies(model, x, y, num_classes, batch_size=self.cfg.batch_size)
        self._write_torch(path, key, {"energy": energy})
        return energy

    # -- SGLD chains
    def samples(self, model: torch.nn.Module, init: generate.Initializer, kind: str, adaptive: bool, *,
                per_class: int, num_classes: int, grid_chains: torch.Tensor,
                ref_energy: torch.Tensor | None = None) -> StoredSamples:
        """`per_class` chains per class from initialisation `kind` (`generate.sample_class_grid` with
        this config's sampler settings; adaptive stopping at τ = cfg.tau against `ref_energy`), the
        frames of `grid_chains`, and p(y|x) of the final samples under `model`; stored."""
        cfg = self.cfg
        if adaptive and ref_energy is None:
            raise ValueError("adaptive stopping needs ref_energy (Ē_y of this model)")
        key, digest = self._key(
            "samples", model=self.model_key(model), init=kind, adaptive=adaptive,
            initializer=initializer_digest(init), per_class=per_class, num_classes=num_classes,
            grid_chains=grid_chains.tolist(), ref_energy=tensor_digest(ref_energy) if adaptive else None)
        path = self.dir / f"samples-{_setting_name(kind, adaptive)}-{digest[:16]}.pt"
        stored = self._read_torch(path, key)
        if stored is None:
            t0 = time.perf_counter()
            x0, res = generate.sample_class_grid(
                model, init, kind, per_class, num_classes, seed=cfg.seed,
                step_size=cfg.step_size, steps=cfg.steps, noise_std=cfg.noise_std, noise_alpha=cfg.noise_alpha,
                momentum=cfg.momentum, step_clip=cfg.step_clip, trace=True,
                snapshot_steps=range(0, cfg.steps + 1, cfg.snapshot_every), snapshot_chains=grid_chains,
                ref_energy=ref_energy if adaptive else None, tau=cfg.tau if adaptive else None,
                batch_size=cfg.batch_size, progress=False)
            seconds = time.perf_counter() - t0
            dev = next(model.parameters()).device
            probs = torch.softmax(predict_logits(model, res.x.to(dev), cfg.batch_size), 1).cpu()
            p_y = probs.gather(1, res.y[:, None]).squeeze(1)
            stored = {"x0": x0, "p_y": p_y, "seconds": seconds,
                      "result": {f.name: getattr(res, f.name) for f in dataclasses.fields(res)}}
            self._write_torch(path, key, stored)
            reused = False
        else:
            reused = True
        res = generate.SGLDResult(**stored["result"])
        res.p_y = stored["p_y"]
        return StoredSamples(stored["x0"], res, float(stored["seconds"]), reused, path)

    # -- FID / KID / IS
    def fidelity(self, name: str, model: torch.nn.Module, kind: str, adaptive: bool, result: generate.SGLDResult,
                 reference: torch.Tensor, *, reference_name: str, weights: fid_metrics.InceptionWeights,
                 num_classes: int, device: str | torch.device = "cpu") -> fid_metrics.FidelityRecord:
        """FID / KID (/ IS) of the first `cfg.n_fid_samples` samples of `result`, taken round-robin over
        the classes (balanced for any count), against `reference` (`metrics.fidelity.compute_fidelity`);
        stored as `fidelity-<init>[-adaptive]-<key>.json`, whose `scored` says what made the samples
        (model `name` and weights digest, init, adaptive stopping, sampler settings) and holds the
        key's sha256 (`store_key`)."""
        cfg = self.cfg
        samples = result.x[balanced_order(result.y, num_classes)[:cfg.n_fid_samples]]
        scored = {"model": name, "model_sha256": self.model_key(model), "init": kind, "adaptive_stop": adaptive,
                  "tau": cfg.tau if adaptive else None, "sampler": {k: getattr(cfg, k) for k in SAMPLER_FIELDS}}
        _, digest = self._key(
            "fidelity", samples=tensor_digest(fid_metrics.to_uint8(samples)),
            reference=tensor_digest(fid_metrics.to_uint8(reference)), reference_name=reference_name,
            weights={"source": weights.source, "file": weights.path.name, "bytes": weights.path.stat().st_size,
                     "has_logits": weights.has_logits},
            scored=scored)
        path = self.dir / f"fidelity-{_setting_name(kind, adaptive)}-{digest[:16]}.json"
        if path.is_file():
            try:
                record = fid_metrics.FidelityRecord.load(path, sealed=True)
                if isinstance(record.scored, dict) and record.scored.get("store_key") == digest:
                    self.reused.append(path)
                    return record
                self._unusable(path, "it holds another result than its name says (its stored key differs)")
            except fileio.CorruptFileError as err:
                self._unusable(path, f"unreadable ({err})")
        record = fid_metrics.compute_fidelity(
            samples, reference, reference_name=reference_name, weights=weights, kid_subset_size=cfg.kid_subset_size,
            device=device, batch_size=cfg.batch_size, seed=cfg.seed)
        record = dataclasses.replace(record, scored={**scored, "store_key": digest})
        record.save(path)
        self.computed.append(path)
        return record

    def summary(self) -> str:
        """One sentence: how many results this execution read back and how many it computed."""
        return f"{len(self.reused)} stored result file(s) read back, {len(self.computed)} computed and stored"
