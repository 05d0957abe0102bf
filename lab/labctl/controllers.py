"""Upstream Kubernetes controllers built from Go modules, cached outside the repository.

Upstream controllers the lab runs out of cluster against its clusters, each from a committed wrapper
module (go.mod/go.sum/build.sh, like ``lab/k8sbin``) that requires the upstream release and names
its main package(s) as a ``tool``:

- ``ome-manager``: OME's controller, ``github.com/sgl-project/ome/cmd/manager`` at v0.1.5
  (``lab/omebin``): InferenceService, BaseModel, ServingRuntime, ... reconcilers;
- ``lws-controller``: the LeaderWorkerSet controller, ``sigs.k8s.io/lws/cmd`` at v0.7.0
  (``lab/lwsbin``);
- ``ray-operator``: KubeRay's operator, ``github.com/ray-project/kuberay/ray-operator`` at v1.5.0
  (``lab/kuberaybin``): RayCluster, RayJob, RayService reconcilers;
- ``keda``: KEDA v2.21.0's operator and metrics API server, ``github.com/kedacore/keda/v2/cmd/operator``
  and ``cmd/adapter`` in one ``go build`` (``lab/kedabin``: they share nearly every package), written as
  ``keda-operator`` and ``keda-adapter``. The wrapper copies KEDA's one ``replace`` and ``exclude``.

Each ``build.sh`` builds with ``-trimpath``, stripped (``-s -w``) and version-stamped the way the
upstream Makefile does (``pkg/version.GitVersion``/``GitCommit``), writes ``$1.tmp`` and renames
it to ``$1``, and uses the default Go module and build caches shared with the lab's other builds.

OME v0.1.5 needs two workarounds, both carried in ``lab/omebin``:

- **go.sum seeded from OME's own go.sum.** Through this module proxy the checksum database has no
  entry for ``github.com/sgl-project/ome`` itself nor for two of its dependencies
  (``sigs.k8s.io/kueue@v0.10.6``, ``sigs.k8s.io/scheduler-plugins@v0.30.12``): ``go mod tidy``
  fails with "verifying module: ... 404 Not Found". The wrapper's go.sum was started from the
  go.sum in OME's module (the checksums OME's authors recorded), then tidied with
  ``GONOSUMDB=github.com/sgl-project/ome``; build.sh sets that too, so only OME's own zip is taken
  from the proxy unverified by the database (go.sum still pins its hash from then on).
- **A C stub for libxet.** ``cmd/manager`` imports ``pkg/modelagent`` (through the BaseModel
  controller), which imports the cgo package ``pkg/xet``, linked with ``-lxet``: a Rust library
  whose crate depends on git crates from github.com/huggingface/xet-core that cannot be fetched
  here, and ``pkg/xet`` has no non-cgo fallback. ``lab/omebin/xetstub/xet_stub.c`` implements
  every function of ``pkg/xet/xet.h``, each failing with an error; build.sh compiles it into a
  temporary ``libxet.a`` (``gcc -c`` + ``ar rcs``, with empty ``libssl``/``libcrypto``/
  ``libstdc++`` archives for the real library's other ``-l`` flags) and links through
  ``CGO_LDFLAGS=-L<that dir>``. The manager never downloads model weights: its BaseModel
  controller uses only ``pkg/modelagent``'s types and status constants, and the only caller of
  ``pkg/xet`` is modelagent's ``Gopher`` (``gopher.go``), which only ``cmd/model-agent`` (the
  DaemonSet that downloads weights) creates. So the controller never reaches the stub, and
  if anything did, it would get an error, not a crash. The build needs gcc (cgo).

LWS, KubeRay and KEDA build unchanged (``CGO_ENABLED=0``).

Cache: ``~/.cache/ai-cluster-lab/controllers/<name>/<key>/bin/<name>``, where ``<key>`` hashes the
wrapper's go.mod, go.sum and build.sh (and ``xetstub/xet_stub.c`` for OME): a change to the pins,
the build or the stub rebuilds that controller; anything else reuses it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from labctl import buildlog, k8sbin, paths


class BuildError(k8sbin.BuildError):
    """A controller could not be built or found; the message is one line for the user."""


@dataclass(frozen=True)
class Controller:
    name: str          # the binary, and the cache directory's name
    module_dir: Path   # the wrapper module
    module: str        # the upstream module the wrapper requires
    title: str         # for the progress line
    purpose: str
    minutes: int       # rough cold build time on 2 cores
    files: tuple[str, ...] = ("go.mod", "go.sum", "build.sh")
    cgo: bool = False
    binaries: tuple[str, ...] = ()   # what build.sh writes (default: the name alone)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.binaries or (self.name,)


CONTROLLERS = {
    c.name: c for c in (
        Controller("ome-manager", paths.LAB_DIR / "omebin", "github.com/sgl-project/ome", "OME",
                   "for InferenceServices in the lab", 6,
                   files=("go.mod", "go.sum", "build.sh", "xetstub/xet_stub.c"), cgo=True),
        Controller("lws-controller", paths.LAB_DIR / "lwsbin", "sigs.k8s.io/lws", "LeaderWorkerSet",
                   "for multi-node serving in the lab", 4),
        Controller("ray-operator", paths.LAB_DIR / "kuberaybin", "github.com/ray-project/kuberay/ray-operator",
                   "KubeRay", "for RayClusters and RayServices in the lab", 2),
        Controller("keda", paths.LAB_DIR / "kedabin", "github.com/kedacore/keda/v2", "KEDA",
                   "(operator and metrics API server) for event-driven scaling in the lab", 7,
                   binaries=("keda-operator", "keda-adapter")),
    )
}
NAMES = tuple(CONTROLLERS)


def _controller(name: str) -> Controller:
    try:
        return CONTROLLERS[name]
    except KeyError:
        raise BuildError(f"unknown controller {name!r}: one of {', '.join(NAMES)}") from None


def module_key(name: str, module_dir: Path | None = None) -> str:
    """Hash of everything that decides the binary's content (``module_dir`` overrides the wrapper's, for tests)."""
    controller = _controller(name)
    directory = module_dir or controller.module_dir
    digest = hashlib.sha256()
    for rel in controller.files:
        digest.update(rel.encode() + b"\0")
        digest.update((directory / rel).read_bytes())
    return digest.hexdigest()[:16]


def version(name: str, module_dir: Path | None = None) -> str:
    """The upstream release the wrapper module pins (e.g. ``v0.1.5``)."""
    controller = _controller(name)
    go_mod = (module_dir or controller.module_dir) / "go.mod"
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(controller.module)} (v\S+)", go_mod.read_text(), re.M)
    if not match:
        raise BuildError(f"{go_mod} does not require {controller.module}")
    return match.group(1)


def bin_dir(name: str) -> Path:
    return paths.CACHE_DIR / "controllers" / name / module_key(name) / "bin"


def binary(name: str, output: str | None = None) -> Path:
    """Where controller ``name``'s binary ``output`` (default: the one named like the controller, or its
    first) is once built; ``ensure_built`` builds it."""
    return bin_dir(name) / (output or _controller(name).outputs[0])


def is_built(name: str | None = None) -> bool:
    """Whether ``name`` (default: every controller) is in the cache for its current wrapper module."""
    return all((bin_dir(n) / out).is_file() for n in ((_controller(name).name,) if name else NAMES)
               for out in _controller(n).outputs)


def ensure_built(log=print, names: tuple[str, ...] | None = None) -> dict[str, Path]:
    """Build each controller once per wrapper-module hash; return {name: binary path}.

    One line per controller built goes to ``log``; Go's output goes to the build log (labctl.buildlog)."""
    built = {}
    for name in names or NAMES:
        controller = _controller(name)
        target = binary(name)
        if not all((target.parent / out).is_file() for out in controller.outputs):
            if not shutil.which("go"):
                raise BuildError(f"Go toolchain not found on PATH: install Go >= 1.26 (the lab builds {name} "
                                 "from modules)")
            if controller.cgo and not shutil.which("gcc"):
                raise BuildError(f"gcc not found: {name} needs cgo (install the Debian package gcc)")
            log(f"building {controller.title} {version(name)} controller ({name}) from Go modules "
                f"{controller.purpose} (~{controller.minutes} min on 2 cores, cold{buildlog.note()}) ...")
            code, path = buildlog.run(["bash", str(controller.module_dir / "build.sh"), str(target.parent)],
                                      f"{name} build")
            if code != 0 or not all((target.parent / out).is_file() for out in controller.outputs):
                raise BuildError(f"{name} build failed (exit {code}); see {buildlog.shown(path)}")
        built[name] = target
    return built
