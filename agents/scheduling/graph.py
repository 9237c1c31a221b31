"""The scheduling env's padded graph observation as ``torch_geometric`` data (for GNN policies)."""

from __future__ import annotations

import numpy as np


def _as_tensor(x, dtype):
    import torch

    if isinstance(x, torch.Tensor):
        return x.to(dtype)
    return torch.as_tensor(np.asarray(x), dtype=dtype)


def to_pyg_batch(observation):
    """Turn one observation or a batch of them (NumPy or torch, as SB3 passes them) into a ``Batch``.

    Padding is dropped: node ``i`` of a graph keeps index ``i`` (real targets come first), so the
    policy's per-node scores line up with the env's actions. Each graph carries ``x`` (nodes x 16
    features), ``edge_index`` (2 x edges, long), ``edge_attr`` (edges x 2) and ``u`` (1 x 16
    global features); the batch adds ``batch`` and ``ptr`` as usual.

    Raises
    ------
    KeyError: a required key of the observation is missing.
    ValueError: the arrays disagree in shape.
    """
    import torch
    from torch_geometric.data import Batch, Data

    for key in ("nodes", "edge_index", "edges", "globals", "node_mask", "edge_mask"):
        if key not in observation:
            raise KeyError(f"observation has no {key!r}; expected the TelescopeScheduling Dict observation")
    nodes = _as_tensor(observation["nodes"], torch.float32)
    single = nodes.dim() == 2
    get = (lambda k, dt: _as_tensor(observation[k], dt)[None]) if single else (
        lambda k, dt: _as_tensor(observation[k], dt))
    nodes = nodes[None] if single else nodes
    edge_index = get("edge_index", torch.long)
    edges, glob = get("edges", torch.float32), get("globals", torch.float32)
    node_mask, edge_mask = get("node_mask", torch.bool), get("edge_mask", torch.bool)
    if edge_index.shape[0] != nodes.shape[0] or edge_index.shape[1] != 2 or edges.shape[1] != edge_index.shape[2]:
        raise ValueError(f"inconsistent shapes: nodes {tuple(nodes.shape)}, edge_index {tuple(edge_index.shape)}, "
                         f"edges {tuple(edges.shape)}")
    graphs = []
    for b in range(nodes.shape[0]):
        n = int(node_mask[b].sum())
        keep = edge_mask[b]
        graphs.append(Data(x=nodes[b, :n], edge_index=edge_index[b][:, keep], edge_attr=edges[b][keep],
                           u=glob[b][None]))
    return Batch.from_data_list(graphs)
