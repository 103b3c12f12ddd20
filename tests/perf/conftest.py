"""Shared checks of the lean-path tests.

``reentrant`` (fixture): ``reentrant(outputs, inputs)`` asserts that a backward through the lean ops
upstream of ``outputs`` writes into nothing the graph holds (every saved tensor and every tensor
reachable from the graph node's attributes, plus the outputs, bit-identical before and after), leaves
no tensor of its own on the node, and that two backward passes give bit-identical gradients
(``torch.equal``: same ops, same order).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor


def held_tensors(node: Any) -> dict[str, Tensor]:
    """Every tensor a custom-Function graph node holds: its saved tensors and every tensor reachable
    from its attributes (through objects, dicts, lists and tuples), by path."""
    out: dict[str, Tensor] = {}
    seen: set[int] = set()

    def walk(obj: Any, path: str) -> None:
        if isinstance(obj, Tensor):
            out[path] = obj
            return
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}[{k!r}]")
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")
        elif hasattr(obj, "__dict__") and type(obj).__module__.startswith("spikeplastic"):
            for k, v in vars(obj).items():
                walk(v, f"{path}.{k}")

    for i, t in enumerate(node.saved_tensors):
        walk(t, f"saved[{i}]")
    for k, v in vars(node).items():
        walk(v, f"ctx.{k}")
    return out


def lean_nodes(outputs: list[Tensor]) -> list[Any]:
    """The lean ops' graph nodes upstream of ``outputs``."""
    nodes: list[Any] = []
    stack = [t.grad_fn for t in outputs if t.grad_fn is not None]
    seen: set[int] = set()
    while stack:
        fn = stack.pop()
        if fn is None or id(fn) in seen:
            continue
        seen.add(id(fn))
        if type(fn).__name__ in ("_LIFLayerFnBackward", "_HebbRNNFnBackward"):
            nodes.append(fn)
        stack.extend(f for f, _ in fn.next_functions)
    return nodes


def random_loss(outputs: list[Tensor], seed: int = 11) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in outputs)


def check_reentrant(outputs: list[Tensor], inputs: list[Tensor]) -> None:
    """Saved state and outputs unchanged by each of two backward passes, which are bit-identical."""
    nodes = lean_nodes(outputs)
    assert nodes, "no lean graph node found"
    before = [{k: v.clone() for k, v in held_tensors(n).items()} for n in nodes]
    outs_before = [t.detach().clone() for t in outputs]
    loss = random_loss(outputs)
    grads = []
    for _ in range(2):
        grads.append(torch.autograd.grad(loss, inputs, retain_graph=True, allow_unused=True))
        for n, snap in zip(nodes, before):
            now = held_tensors(n)
            for k, v in snap.items():
                same = k in now and torch.equal(now[k], v)
                assert same, f"the backward wrote into {k} (held by the graph)"
            left = sorted(set(now) - set(snap))
            assert not left, f"the backward left tensors on the graph node: {left}"
        for i, (a, b) in enumerate(zip(outputs, outs_before)):
            same = torch.equal(a, b)
            assert same, f"the backward wrote into output {i}"
    g1, g2 = grads
    assert any(g is not None and bool(g.abs().max() > 0) for g in g1), "vacuous: all gradients zero"
    for i, (a, b) in enumerate(zip(g1, g2)):
        assert (a is None) == (b is None)
        if a is not None:
            same = torch.equal(a, b)
            assert same, f"gradient {i} differs between two backward passes: {float((a - b).abs().max()):.3g}"

@pytest.fixture
def reentrant() -> Callable[[list[Tensor], list[Tensor]], None]:
    return check_reentrant
