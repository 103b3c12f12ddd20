"""The package's layers point one way: no import cycles, no upward imports (issue 11).

**The import graph** (built statically with :mod:`ast`, nothing is imported):

- Nodes: every module of ``spikeplastic/`` and of ``export/`` (installed as ``spikeplastic.export``);
  a package's ``__init__.py`` is the node of the package itself (``spikeplastic.meta``, ``spikeplastic``).
- Edges: every ``import`` / ``from ... import`` statement anywhere in a file -- at module level, inside
  functions (lazy imports count: they run too), under ``if``/``try``, ``TYPE_CHECKING`` blocks included --
  with relative imports resolved. ``import a.b`` gives an edge to ``a.b``; ``from P import n`` gives an
  edge to the module ``P.n`` when ``P.n`` is a module of the package (a submodule import), else to ``P``
  (a name taken from module ``P``, or from package ``P``'s ``__init__``).
- Not edges: the implicit loading of parent packages (importing ``a.b.c`` runs ``a/__init__``, but a
  module depends only on what it names), and dynamic imports (``importlib.import_module``, e.g. the
  lazy table of ``spikeplastic.export``'s ``__getattr__``).

**Rules checked:**

1. *Facades*: a package's ``__init__`` may import its own submodules (to re-export them); a module
   never imports one of its own ancestor packages' ``__init__`` (it imports the defining module
   instead). Re-exporting thus never closes a cycle, and the root ``spikeplastic`` facade (which may
   import anything) is imported by nothing inside the package.
2. *No cycles*: the graph has no cycle (strongly connected component of more than one module, or a
   module importing itself).
3. *Layers*: every module belongs to exactly one layer of :data:`LAYERS` (lowest first; a module
   belongs to the layer of its longest matching name prefix), and no module imports a module of a
   higher layer. Imports within a layer are free (rule 2 still applies).

:data:`PENDING_EDGES` lists the few edges that other branches of the same refactor remove; they are
skipped by every rule, and an entry that no longer matches any edge fails the tests, so that it is
deleted when its branch is merged.

Also here: in a fresh interpreter, importing the tasks, the baselines or the models does not load the
meta-trainer (nor anything of :mod:`spikeplastic.meta`), and ``import spikeplastic`` loads neither the
tasks nor the models; public names (``__all__``) are defined in public modules.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOT = "spikeplastic"
#: source folders and the dotted package name each one is installed as
SOURCES = {REPO / "spikeplastic": "spikeplastic", REPO / "export": "spikeplastic.export"}

#: The layers, lowest first: module-name prefixes (a prefix matches the module itself and its
#: submodules; the root facade ``spikeplastic`` matches only itself).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("spikeplastic._imports", "spikeplastic._validation", "spikeplastic._params", "spikeplastic._version",
              "spikeplastic.ir")),
    ("functional", ("spikeplastic.functional",)),
    ("components", ("spikeplastic.surrogate", "spikeplastic.neurons", "spikeplastic.rules", "spikeplastic.modulation",
                    "spikeplastic.loihi_format",
                    "spikeplastic.plastic", "spikeplastic.embedding")),
    # networks and what works on whole networks (quant projects a Network's constants; lean: the
    # memory-lean whole-episode ops, a module or a package spikeplastic.lean.*)
    ("networks", ("spikeplastic.network", "spikeplastic.quant", "spikeplastic.simulate", "spikeplastic.interop",
                  "spikeplastic.lean")),
    ("protocol", ("spikeplastic.protocol",)),
    ("tasks and baselines", ("spikeplastic.tasks", "spikeplastic.baselines")),
    ("models", ("spikeplastic.models", "spikeplastic.snn_oneshot")),
    # the continual-learning benchmark: task sequences, EWC and learners built on the models (issue 14)
    ("continual", ("spikeplastic.continual",)),
    ("meta", ("spikeplastic.meta",)),
    # the exporter: above the core and the trainer (it replays checkpoints), imported only by the CLI
    ("export", ("spikeplastic.export",)),
    ("top", ("spikeplastic.cli", "spikeplastic")),
)

#: Edges that other branches of the issue-11 refactor remove; skipped by every rule. Each is
#: ``(source prefix, target module)``; the source prefix matches like a layer prefix.
PENDING_EDGES: tuple[tuple[str, str, str], ...] = (
)

Edge = tuple[str, str, str, int]  # (source module, target module, file, line)


# ---- the graph ------------------------------------------------------------------------------------

def package_modules(sources: Mapping[Path, str] = SOURCES) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``sources``."""
    mods: dict[str, Path] = {}
    for folder, name in sources.items():
        for f in sorted(folder.rglob("*.py")):
            parts = list(f.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join([name, *parts])] = f
    return mods


def _resolve(mods: Mapping[str, Path], src: str) -> str | None:
    """``src`` or, for a name that is not a module (``from a.b import name``-style), its longest module prefix."""
    while src and src not in mods:
        src = src.rpartition(".")[0]
    return src or None


def module_imports(name: str, path: Path, mods: Mapping[str, Path], source: str | None = None) -> list[Edge]:
    """The package-internal import edges of module ``name`` (file ``path``; ``source`` overrides its text)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    edges: list[Edge] = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                if node.level - 1 > len(base):
                    raise AssertionError(f"{path}:{node.lineno}: relative import beyond the top package")
                base = base[: len(base) - (node.level - 1)]
                src = ".".join(base + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            for a in node.names:
                sub = f"{src}.{a.name}"
                targets.append(sub if sub in mods else src)
        for t in targets:
            if t == ROOT or t.startswith(ROOT + "."):
                target = _resolve(mods, t)
                if target is not None:
                    edges.append((name, target, str(path.relative_to(REPO)), node.lineno))
    return edges


def import_graph(mods: Mapping[str, Path] | None = None, overrides: Mapping[str, str] | None = None) -> list[Edge]:
    """Every edge of the package (``overrides``: module name -> replacement source text, for the self-tests)."""
    mods = package_modules() if mods is None else mods
    overrides = overrides or {}
    return [e for m, p in mods.items() for e in module_imports(m, p, mods, overrides.get(m))]


def _matches(prefix: str, module: str) -> bool:
    return module == prefix or (prefix != ROOT and module.startswith(prefix + "."))


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of ``module``'s longest matching prefix (``KeyError`` when none matches)."""
    best: tuple[int, int] | None = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if _matches(p, module) and (best is None or len(p) > best[0]):
                best = (len(p), i)
    if best is None:
        raise KeyError(module)
    return best[1]


def _pending(edge: Edge) -> tuple[str, str, str] | None:
    return next((x for x in PENDING_EDGES if _matches(x[0], edge[0]) and edge[1] == x[1]), None)


def checked_edges(edges: Iterable[Edge]) -> list[Edge]:
    """``edges`` without the :data:`PENDING_EDGES`."""
    return [e for e in edges if _pending(e) is None]


def facade_violations(edges: Iterable[Edge]) -> list[str]:
    """Rule 1: edges from a module to one of its own ancestor packages."""
    return [f"{f}:{line}: {s} imports its ancestor package {t} (import from the defining module instead)"
            for s, t, f, line in edges if s != t and s.startswith(t + ".")]


def cycles(edges: Iterable[Edge]) -> list[list[str]]:
    """Rule 2: the cycles of the graph, as its strongly connected components of > 1 module (and self-imports)."""
    graph: dict[str, set[str]] = {}
    found: list[list[str]] = []
    for s, t, _, _ in edges:
        graph.setdefault(s, set()).add(t)
        graph.setdefault(t, set())
        if s == t:
            found.append([s])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0

    def visit(root: str) -> None:  # Tarjan, iterative
        nonlocal counter
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward_imports(edges: Iterable[Edge]) -> list[str]:
    """Rule 3: edges from a module to a module of a higher layer."""
    bad = []
    for s, t, f, line in edges:
        ls, lt = layer_of(s), layer_of(t)
        if lt > ls:
            bad.append(f"{f}:{line}: {s} (layer {LAYERS[ls][0]!r}) imports {t} (higher layer {LAYERS[lt][0]!r})")
    return bad


def _describe_cycle(comp: list[str], edges: Iterable[Edge]) -> str:
    inside = set(comp)
    lines = [f"  {f}:{line}: {s} -> {t}" for s, t, f, line in edges if s in inside and t in inside]
    return "cycle among " + ", ".join(comp) + "\n" + "\n".join(sorted(set(lines)))


# ---- the rules on the package ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return import_graph()


def test_the_graph_sees_the_package(edges) -> None:
    """Sanity: the walk finds the modules and the kinds of imports the rules are about."""
    mods = package_modules()
    assert {"spikeplastic", "spikeplastic.protocol", "spikeplastic.meta.trainer", "spikeplastic.tasks",
            "spikeplastic.export", "spikeplastic.export.cli_commands", "spikeplastic.cli"} <= set(mods)
    pairs = {(s, t) for s, t, _, _ in edges}
    assert ("spikeplastic.tasks.pattern", "spikeplastic.protocol") in pairs           # relative, module level
    assert ("spikeplastic.meta.build", "spikeplastic.models") in pairs                # inside a function
    assert ("spikeplastic.cli", "spikeplastic.export.cli_commands") in pairs          # from . import submodule
    assert ("spikeplastic.baselines.rnn", "spikeplastic.protocol") in pairs          # absolute


def test_every_module_has_a_layer() -> None:
    missing = []
    for m in package_modules():
        try:
            layer_of(m)
        except KeyError:
            missing.append(m)
    assert not missing, f"modules in no layer (add them to LAYERS): {missing}"


def test_pending_edges_still_exist(edges) -> None:
    """Every :data:`PENDING_EDGES` entry matches an edge; delete the entries their merge made stale."""
    stale = [x for x in PENDING_EDGES if not any(_matches(x[0], s) and t == x[1] for s, t, _, _ in edges)]
    assert not stale, f"PENDING_EDGES entries that match no import any more, delete them: {stale}"


def test_no_module_imports_its_own_ancestor_package(edges) -> None:
    bad = facade_violations(checked_edges(edges))
    assert not bad, "\n".join(bad)


def test_no_import_cycle(edges) -> None:
    kept = checked_edges(edges)
    found = cycles(kept)
    assert not found, "\n".join(_describe_cycle(c, kept) for c in found)


def test_no_upward_import(edges) -> None:
    bad = upward_imports(checked_edges(edges))
    assert not bad, "\n".join(bad)


# ---- the checks can fail -----------------------------------------------------------------------------

def _with(module: str, extra: str) -> list[Edge]:
    """The package's graph with ``extra`` (source text) appended to ``module``."""
    mods = package_modules()
    return checked_edges(import_graph(mods, {module: mods[module].read_text() + "\n" + extra + "\n"}))


def test_an_upward_import_is_caught() -> None:
    # a lazy, relative import of the trainer from a task: upward (tasks < meta) and a cycle through config
    g = _with("spikeplastic.tasks.pattern", "def f():\n    from ..meta.trainer import Trainer\n")
    assert any("spikeplastic.tasks.pattern" in b and "spikeplastic.meta.trainer" in b for b in upward_imports(g))
    assert any({"spikeplastic.tasks.pattern", "spikeplastic.meta.config"} <= set(c) for c in cycles(g))
    # the core importing the exporter
    g = _with("spikeplastic.network", "import spikeplastic.export.verification")
    assert any("spikeplastic.export.verification" in b for b in upward_imports(g))
    # the lower layer importing the CLI, the cycle this refactor broke
    g = _with("spikeplastic.meta.distributed", "from ..cli import main")
    assert any({"spikeplastic.cli", "spikeplastic.meta.distributed"} <= set(c) for c in cycles(g))
    assert any("spikeplastic.cli" in b for b in upward_imports(g))


def test_a_facade_import_is_caught() -> None:
    g = _with("spikeplastic.meta.trainer", "import spikeplastic")
    assert any("ancestor package spikeplastic " in b for b in facade_violations(g))
    g = _with("spikeplastic.tasks.cue", "from . import TASKS")
    assert any("spikeplastic.tasks.cue imports its ancestor package spikeplastic.tasks" in b for b in facade_violations(g))
    assert any({"spikeplastic.tasks", "spikeplastic.tasks.cue"} <= set(c) for c in cycles(g))


def test_a_same_layer_cycle_is_caught() -> None:
    g = _with("spikeplastic.protocol", "")  # unchanged: no cycle
    assert not cycles(g)
    mods = package_modules()
    g = checked_edges(import_graph(mods, {
        "spikeplastic.rules": mods["spikeplastic.rules"].read_text() + "\ndef f():\n    from .plastic import PlasticLinear\n",
    }))
    assert any({"spikeplastic.rules", "spikeplastic.plastic"} <= set(c) for c in cycles(g))
    assert not upward_imports(g)  # same layer: only the cycle rule sees it


def test_layer_of_handles_packages_and_the_root() -> None:
    assert LAYERS[layer_of("spikeplastic")][0] == "top"
    assert LAYERS[layer_of("spikeplastic.lean")][0] == "networks"
    assert LAYERS[layer_of("spikeplastic.lean.kernels")][0] == "networks"  # lean as a package
    assert LAYERS[layer_of("spikeplastic.meta.protocol")][0] == "meta"
    with pytest.raises(KeyError):
        layer_of("spikeplastic.unknown_module")


# ---- what a fresh interpreter loads --------------------------------------------------------------------

LOADS = """
import json, sys
import {module}
meta = sorted(m for m in sys.modules if m == "spikeplastic.meta" or m.startswith("spikeplastic.meta."))
print(json.dumps([meta, "spikeplastic.tasks" in sys.modules, "spikeplastic.models" in sys.modules]))
"""


def _fresh(module: str) -> tuple[list[str], bool, bool]:
    """In a new interpreter, ``import module``: (the spikeplastic.meta modules loaded, tasks loaded, models loaded)."""
    r = subprocess.run([sys.executable, "-c", LOADS.format(module=module)], capture_output=True, text=True,
                       timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    meta, tasks, models = json.loads(r.stdout.strip().splitlines()[-1])
    return meta, tasks, models


@pytest.mark.parametrize("module", ["spikeplastic.tasks", "spikeplastic.baselines", "spikeplastic.models",
                                    "spikeplastic.protocol"])
def test_tasks_baselines_models_do_not_load_the_trainer(module) -> None:
    meta, _, _ = _fresh(module)
    assert "spikeplastic.meta.trainer" not in meta
    assert meta == [], f"import {module} loaded {meta}"


def test_import_spikeplastic_loads_no_tasks_models_or_meta() -> None:
    meta, tasks, models = _fresh("spikeplastic")
    assert (meta, tasks, models) == ([], False, False)


def test_the_fresh_check_sees_the_trainer() -> None:
    """The probe reports the trainer when it is loaded (so the tests above can fail)."""
    meta, tasks, _ = _fresh("spikeplastic.meta")
    assert "spikeplastic.meta.trainer" in meta and tasks


# ---- public names live in public modules -----------------------------------------------------------------

def _private(module: str) -> bool:
    return any(p.startswith("_") for p in module.split("."))


def test_public_names_are_defined_in_public_modules() -> None:
    """Classes and functions in a public module's ``__all__`` are defined in a public module
    (the exporter, which loads Lava on use, is checked by its own tests)."""
    bad = []
    for name in package_modules():
        if _private(name) or _matches("spikeplastic.export", name):
            continue
        mod = importlib.import_module(name)
        for attr in getattr(mod, "__all__", ()):
            obj = getattr(mod, attr)
            home = getattr(obj, "__module__", None)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and home and _private(home):
                bad.append(f"{name}.{attr} is defined in the private module {home}")
    assert not bad, "\n".join(bad)


def test_protocol_names_are_reexported() -> None:
    import spikeplastic
    import spikeplastic.meta as meta
    import spikeplastic.meta.protocol as old
    import spikeplastic.protocol as protocol

    for name in protocol.__all__:
        assert getattr(old, name) is getattr(protocol, name), name
    for name in ("Episode", "EpisodeModel", "SupervisedTask", "RLTask", "Task", "run_supervised", "LEAN_MODES"):
        assert getattr(meta, name) is getattr(protocol, name), name
    from spikeplastic.models import make_model
    from spikeplastic.tasks import make_task

    assert spikeplastic.make_model is make_model and spikeplastic.make_task is make_task
