"""A 0/1 linear map stored as indices: the selection factor of the construction's weights.

Each head of the construction needs ``W_V^h W_O^h = M_delta`` (docs/theory.md §3.2), and
``vitconv.numeric.blocks.factorize`` splits ``M_delta`` so that one factor holds entries of
the kernel and the other is a *selection*: a 0/1 matrix with one 1 per row or per column.
Stored densely, that selection is as large as the kernel's own factor (for 9 heads on
pixel tokens, a ``C_out x C_out`` identity per head). :class:`Selection` stores only where
the ones are, so a converted network holds about as many weights as the convolutions it
came from. As a map it is ``F.linear`` with :meth:`Selection.dense_weight` without its
products by 0 and 1: a gather copies entries exactly, a scatter adds the entries sent to
each output in a fixed order (so results equal a dense product's up to the order of
summation, and are the same from run to run on every device: no atomic additions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SELECTION_KINDS = ("gather", "scatter")


def check_input_dtype(x: torch.Tensor, dtype: torch.dtype, of: str) -> None:
    """Refuse an input in another dtype than the layer's ``of`` (``"layer's"``,
    ``"weights'"``), as ``nn.Linear`` does; under autocast its rules apply instead."""
    if x.dtype != dtype and not torch.is_autocast_enabled(x.device.type):
        raise ValueError(f"input dtype {x.dtype} differs from the {of} {dtype} "
                         "(nn.Linear refuses this too)")


class Selection(nn.Module):
    """``y = x S^T + b`` with ``S`` a 0/1 ``(out_features, in_features)`` matrix.

    Args:
        in_features, out_features: the map's sizes.
        index: ``kind="gather"``: ``(out_features,)``, output ``i`` copies input
            ``index[i]`` (one 1 per row of ``S``: a value factor that picks rows of
            ``M_delta``). ``kind="scatter"``: ``(in_features,)``, input ``j`` is added to
            output ``index[j]`` (one 1 per column: an output factor that puts the kept
            columns of ``M_delta`` back, heads writing the same output summed).

    Parameters: ``bias`` ``(out_features,)``, trainable as in ``nn.Linear``; the ones of
    ``S`` are a buffer (``index``), not trainable. Forward maps ``(..., in_features)`` to
    ``(..., out_features)`` in the input's dtype; each output of a scatter is a sum of the
    inputs sent to it, in increasing input order, so rounding bounds that count a dense
    row's terms hold. A scatter's work is one gather of the output width per input that
    the busiest output receives (in the construction, at most the number of heads).
    """

    def __init__(self, in_features: int, out_features: int, index: torch.Tensor, kind: str,
                 *, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if kind not in SELECTION_KINDS:
            raise ValueError(f"kind={kind!r} must be one of {SELECTION_KINDS}")
        self.in_features, self.out_features, self.kind = in_features, out_features, kind
        index = torch.as_tensor(index)
        self._check_index(index)
        self.register_buffer("index", index.to(device=device).clone())
        self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype))
        # A scatter runs as rounds of gathers: round k holds, for every output, the k-th
        # input sent to it (``in_features``, a zero, where none is left). Derived from
        # ``index`` and never saved: rederived before an eager call when the index is
        # another tensor or was written in place (a state dict, ``copy_``) since.
        self.register_buffer("rounds", self._rounds(), persistent=False)
        self._rounds_of = self._index_key()

    def _check_index(self, index: torch.Tensor) -> None:
        length, bound = ((self.out_features, self.in_features) if self.kind == "gather"
                         else (self.in_features, self.out_features))
        if index.dtype != torch.long or index.shape != (length,):
            raise ValueError(f"index must be a 1-D int64 tensor of length {length} for a "
                             f"{self.kind}, got {index.dtype} of shape {tuple(index.shape)}")
        if length and not (0 <= int(index.min()) and int(index.max()) < bound):
            raise ValueError(f"index entries must lie in [0, {bound}) for a {self.kind}")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        if prefix + "index" in state_dict:  # refused before anything is overwritten
            self._check_index(state_dict[prefix + "index"])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"kind={self.kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_dtype(x, self.bias.dtype, "layer's")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"input has {x.shape[-1]} features, the selection takes "
                             f"{self.in_features}")
        if self.kind == "gather":
            y = x.index_select(-1, self.index)
            return y + self.bias.to(y.dtype)
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if not tracing and self._rounds_of != self._index_key():
            self.rounds = self._rounds()  # the index changed since the rounds were derived
            self._rounds_of = self._index_key()
        if len(self.rounds) == 0:  # nothing is sent anywhere
            y = x.new_zeros(*x.shape[:-1], self.out_features)
        elif x.device.type == "cpu" and not tracing:
            # On the CPU index_add adds the inputs one after another in index order: the
            # same sums in the same order as the rounds (bitwise equal), without their
            # padded copy and full-width gathers (1.7x faster on resnet50).
            rows = x.shape[:-1]
            flat = x.reshape(-1, self.in_features)
            y = flat.new_zeros(flat.shape[0], self.out_features).index_add(1, self.index, flat)
            y = y.reshape(*rows, self.out_features)
        else:
            padded = F.pad(x, (0, 1))  # the zero that empty slots of a round read
            y = padded.index_select(-1, self.rounds[0])
            for k in range(1, len(self.rounds)):
                y = y + padded.index_select(-1, self.rounds[k])
        return y + self.bias.to(y.dtype)

    def _index_key(self) -> tuple:
        """Which index tensor, and which write to it, the rounds were derived from (no
        device synchronisation: version counters, not values; ``.data`` writes bypass
        them, so edit the index in place through ``copy_``)."""
        index = self.index
        return (id(index), index.data_ptr(), index.device, index._version)

    def _rounds(self) -> torch.Tensor:
        """``(K, out_features)``: row ``k`` holds the ``k``-th input (in increasing order)
        sent to each output, or ``in_features`` where fewer than ``k + 1`` are; ``K`` is the
        most inputs any output receives (0 rows for a gather)."""
        index = self.index
        if self.kind == "gather" or len(index) == 0:
            return torch.zeros(0, self.out_features, dtype=torch.long, device=index.device)
        order = torch.argsort(index, stable=True)
        target = index[order]
        counts = torch.bincount(index, minlength=self.out_features)
        first = torch.cumsum(counts, 0) - counts
        rank = torch.arange(len(index), device=index.device) - first[target]
        rounds = torch.full((int(counts.max()), self.out_features), self.in_features,
                            dtype=torch.long, device=index.device)
        rounds[rank, target] = order
        return rounds

    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense ``(out_features, in_features)`` 0/1 matrix (for checks)."""
        W = self.bias.new_zeros(self.out_features, self.in_features)
        ones = torch.arange(len(self.index), device=W.device)
        if self.kind == "gather":
            W[ones, self.index] = 1
        else:
            W[self.index, ones] = 1
        return W
