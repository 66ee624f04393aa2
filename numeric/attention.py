"""Multi-head self-attention of the standard form with a relative-position bias (docs/theory.md §2).

    y_q  = sum_h sum_k A^h_qk (x_k W_V^h + b_V^h) W_O^h + b_O
    A^h  = softmax_k( (x_q W_Q^h + b_Q^h)(x_k W_K^h + b_K^h)^T / sqrt(d_k) + B^h[k - q] )

Positions enter the scores only, through the table ``B^h`` (the T5 / Swin form), never the
values; the lower bounds of docs/theory.md §3.3 rely on that. Heads may have different value widths
(the construction gives head ``h`` the rank of its ``M_delta``). The module is an ordinary
trainable layer: the construction (``vitconv.numeric.conv_attention``) only sets its weights.

One module, two ways to compute the same function (``execution``):

* ``"dense"``: every score, one fused ``F.scaled_dot_product_attention`` call per group of
  heads of equal value width, the relative bias as its additive mask. Needed whenever a
  head attends to more than one key (content scores, a finite gap ``alpha``, learned
  biases).
* ``"sparse"``: when every head's mask keeps exactly one offset (the construction's hard
  heads), ``A^h`` is exactly 1 on that key and 0 elsewhere, whatever the (finite) scores,
  so each head just reads the value of its one key: ``O(N H d)`` work and memory, no
  ``N x N`` matrix.
* ``"auto"`` (default): sparse when it applies and the layer is not training with
  gradients (training uses dense, so that an optimiser sees the exact zero gradients of
  the scores and bias rather than none). In eval mode the sparse path runs even with
  gradients enabled, so the queries, keys and bias then get no gradient (``None``); set
  ``execution = "dense"`` to differentiate them in eval mode.
* Both paths agree whenever the scores are finite: a diverged query, key or bias (an
  infinite score) gives NaN on the dense path and is ignored by the sparse one.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vitconv.numeric.grouped_linear import ChannelGroups, GroupedLinear, GroupedShape

Window = tuple[int, int, int, int]  # (top, left, height, width) on the token grid
Frame = tuple[int, int, int, int]  # zero tokens (top, bottom, left, right) around the grid
NO_FRAME: Frame = (0, 0, 0, 0)
EXECUTIONS = ("auto", "dense", "sparse")
TABLE_CACHE = 4  # index tables kept per layer (grid sizes seen last)
DEFAULT_KEY_DIM = 8  # query/key width per head where scores are trainable


def tracing() -> bool:
    """Whether ``torch.compile``, ``torch.export`` or ``torch.jit.trace`` is recording this
    call. Then no tensor value may be read back into Python: caches are bypassed, the path
    comes from :attr:`RelativeMultiheadAttention.known_targets`, checks of tensor values
    (finite input, the mask) become in-graph assertions (``torch._assert_async``), and
    checks of sizes that may be symbolic (a frame, a window) are skipped."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def _refresh_after_load(module: RelativeMultiheadAttention, _incompatible: object) -> None:
    """A loaded state dict brings its own mask: derive the traced path's offsets from it."""
    module.refresh_targets()


def _same(kept: torch.Tensor | None, current: torch.Tensor) -> bool:
    """Whether ``current`` still equals the copy ``kept`` (dtype, device and values)."""
    return (kept is not None and kept.dtype == current.dtype and kept.device == current.device
            and kept.shape == current.shape and torch.equal(kept, current.detach()))


class RelativeMultiheadAttention(nn.Module):
    """Self-attention over a ``Gh x Gw`` grid of tokens with a relative-position bias.

    Args:
        dim_in: token length ``d_in``.
        dim_out: output token length ``d_out``.
        value_dims: value width of each head (their number is the number of heads).
        key_dim: query/key width per head, ``d_k``.
        offset_range: ``((lo_h, hi_h), (lo_w, hi_w))``, the relative offsets the bias table
            stores; offsets beyond it use the border entry (clipping, as in Shaw et al.).
        channel_groups: value and output weights block diagonal over these channel groups
            (:class:`~numeric.grouped_linear.GroupedLinear`; a grouped convolution's form);
            ``None``: dense ``nn.Linear`` weights.
        projections: ``(value, output)`` modules to use instead of fresh ones (``None``
            for either: a fresh one), e.g. a :class:`~numeric.selection.Selection` where a
            factor of the construction is a 0/1 selection; their sizes must fit
            (``d_in -> sum(value_dims) -> d_out``).

    Besides the learnable table ``rel_bias`` (``(H, hi_h-lo_h+1, hi_w-lo_w+1)``), the buffer
    ``rel_mask`` marks offsets a head may attend to; a masked score is ``-inf`` (hard
    attention). A query row with every key masked is refused, since softmax would be NaN.
    ``execution`` (``"auto"``, ``"dense"`` or ``"sparse"``) picks how forward computes.
    """

    def __init__(
        self,
        dim_in: int,
        dim_out: int,
        value_dims: Sequence[int],
        key_dim: int = DEFAULT_KEY_DIM,
        offset_range: tuple[tuple[int, int], tuple[int, int]] = ((-1, 1), (-1, 1)),
        *,
        channel_groups: ChannelGroups | None = None,
        projections: tuple[nn.Module | None, nn.Module | None] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if isinstance(key_dim, bool) or not isinstance(key_dim, int) or key_dim < 1:
            raise ValueError(f"key_dim must be a positive int, got {key_dim!r} (a width of 0 "
                             "makes every score 0/0)")
        if not value_dims:
            raise ValueError("value_dims must name at least one head")
        if any(d < 0 for d in value_dims):
            raise ValueError(f"value_dims must be >= 0, got {tuple(value_dims)}")
        (lo_h, hi_h), (lo_w, hi_w) = offset_range
        if lo_h > hi_h or lo_w > hi_w:
            raise ValueError(f"offset_range={offset_range} is empty")
        kw = {"device": device, "dtype": dtype}
        self.value_dims = tuple(int(d) for d in value_dims)
        self.key_dim = key_dim
        self.offset_range = ((lo_h, hi_h), (lo_w, hi_w))
        heads, total = len(self.value_dims), sum(self.value_dims)
        self.query = nn.Linear(dim_in, heads * key_dim, **kw)
        self.key = nn.Linear(dim_in, heads * key_dim, **kw)
        value, output = projections or (None, None)
        if channel_groups is None or channel_groups.groups == 1:
            value = nn.Linear(dim_in, total, **kw) if value is None else value
            output = nn.Linear(total, dim_out, **kw) if output is None else output
        else:
            G = channel_groups.groups
            if any(d % G for d in self.value_dims):
                raise ValueError(f"value_dims {self.value_dims} must be multiples of "
                                 f"groups={G} (each head's width is split over the groups)")
            tokens_in = GroupedShape(dim_in // channel_groups.in_channels,
                                     channel_groups.in_channels // G)
            tokens_out = GroupedShape(dim_out // channel_groups.out_channels,
                                      channel_groups.out_channels // G)
            if tokens_in.features(G) != dim_in or tokens_out.features(G) != dim_out:
                raise ValueError(f"token widths {dim_in}, {dim_out} are not whole pixels of "
                                 f"{channel_groups.in_channels}, "
                                 f"{channel_groups.out_channels} channels")
            features = GroupedShape(total // G, 1)
            if value is None:
                value = GroupedLinear(G, tokens_in, features, **kw)
            if output is None:
                output = GroupedLinear(G, features, tokens_out, **kw)
        sizes = [(m.in_features, m.out_features) for m in (value, output)]
        if sizes != [(dim_in, total), (total, dim_out)]:
            raise ValueError(f"projections map {sizes}; this layer needs "
                             f"{[(dim_in, total), (total, dim_out)]}")
        self.value, self.output = value, output
        table = (heads, hi_h - lo_h + 1, hi_w - lo_w + 1)
        self.rel_bias = nn.Parameter(torch.zeros(table, **kw))
        self.register_buffer("rel_mask", torch.ones(table, dtype=torch.bool, device=device))
        self.execution = "auto"
        # The one offset per head as last established in Python (select_offsets, or an eager
        # forward); what a traced graph uses, since it cannot read the mask.
        self.known_targets: tuple[tuple[int, int], ...] | None = None
        self.register_load_state_dict_post_hook(_refresh_after_load)
        # Heads grouped by value width: one fused attention call per group.
        widths = sorted(set(self.value_dims))
        self._buckets = tuple(tuple(h for h, d in enumerate(self.value_dims) if d == w)
                              for w in widths if w > 0)
        self._clear_caches()

    def _clear_caches(self) -> None:
        """Forget everything derived from the tables: index tables per grid (at most
        ``TABLE_CACHE`` of them), the mask checked last, the one-key targets and the bias
        kept at inference. Never saved, pickled or copied (see ``__getstate__``)."""
        self._tables: dict = {}                      # (grid, window, device) -> indices
        self._checked: tuple = (None, None)          # ((grid, window), mask it was checked on)
        self._targets_mask = None  # the mask known_targets was last derived from
        self._bias_cache: tuple = (None, (None, None), None)  # (grid, window), tables, bias

    def __getstate__(self) -> dict:
        state = dict(super().__getstate__())
        for name in ("_tables", "_checked", "_targets_mask", "_bias_cache"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._clear_caches()

    def _apply(self, fn, recurse: bool = True):  # .to(), .half(), .cuda(): new tensors
        self._clear_caches()
        return super()._apply(fn, recurse)

    @property
    def num_heads(self) -> int:
        return len(self.value_dims)

    @property
    def execution(self) -> str:
        return self._execution

    @execution.setter
    def execution(self, mode: str) -> None:
        if mode not in EXECUTIONS:
            raise ValueError(f"execution={mode!r} must be one of {EXECUTIONS}")
        self._execution = mode

    def _offset_indices(self, grid: tuple[int, int], window: Window
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """Table row and column of every (query, key) pair, ``(Nq, Nk)`` each; built once per
        grid, window and device."""
        dev = self.rel_bias.device
        key = (grid, window, dev)
        if tracing() or key not in self._tables:
            (lo_h, hi_h), (lo_w, hi_w) = self.offset_range
            top, left, hq, wq = window
            qr = torch.arange(top, top + hq, device=dev).repeat_interleave(wq)  # (Nq,)
            qc = torch.arange(left, left + wq, device=dev).repeat(hq)
            kr = torch.arange(grid[0], device=dev).repeat_interleave(grid[1])  # (Nk,)
            kc = torch.arange(grid[1], device=dev).repeat(grid[0])
            ih = (kr[None, :] - qr[:, None]).clamp(lo_h, hi_h) - lo_h  # (Nq, Nk)
            iw = (kc[None, :] - qc[:, None]).clamp(lo_w, hi_w) - lo_w
            if tracing():  # part of the graph, not a cache
                return ih, iw
            if len(self._tables) >= TABLE_CACHE:
                self._tables.pop(next(iter(self._tables)))  # the oldest grid
            self._tables[key] = (ih, iw)
        return self._tables[key]

    def relative_bias(self, grid: tuple[int, int], window: Window) -> torch.Tensor:
        """``B^h[k - q]`` for every query of ``window`` and key of ``grid``: ``(H, Nq, Nk)``.

        Masked offsets are ``-inf``. Raises ``ValueError`` if some query has no key left.
        """
        ih, iw = self._offset_indices(grid, window)
        allowed = self.rel_mask[:, ih, iw]  # (H, Nq, Nk)
        checked = self._checked
        if tracing():
            torch._assert_async(allowed.any(-1).all(), "a head masks every key of some query: "
                                "the frame is too small for its offset")
        elif not (checked[0] == (grid, window) and _same(checked[1], self.rel_mask)):
            if not allowed.any(-1).all():
                h = int((~allowed.any(-1)).any(-1).nonzero()[0])
                raise ValueError(f"head {h} masks every key of some query on a {grid} grid: "
                                 "the frame is too small for its offset (softmax would be NaN)")
            self._checked = ((grid, window), self.rel_mask.detach().clone())
        # A gather, not rel_bias[:, ih, iw]: the backward of advanced indexing accumulates
        # in a thread-dependent order on CPU (bitwise different gradients from run to run);
        # gather's backward, scatter_add, is deterministic there.
        H, width = self.rel_bias.shape[0], self.rel_bias.shape[2]
        index = (ih * width + iw).reshape(1, -1).expand(H, -1)  # (H, Nq*Nk)
        bias = self.rel_bias.reshape(H, -1).gather(1, index).view(H, *ih.shape)
        return bias.masked_fill(~allowed, float("-inf"))

    def _inference_bias(self, grid: tuple[int, int], window: Window) -> torch.Tensor:
        """:meth:`relative_bias`, kept between calls while no gradient can flow into it and
        neither the table nor the mask has changed. Changes are detected by comparing with
        copies of the (small) table and mask, not by version counters, which fused
        optimisers, ``.data`` writes and ``vector_to_parameters`` do not advance."""
        if tracing() or (torch.is_grad_enabled() and self.rel_bias.requires_grad):
            return self.relative_bias(grid, window)
        key, tables, bias = self._bias_cache
        if not (key == (grid, window) and _same(tables[0], self.rel_bias)
                and _same(tables[1], self.rel_mask)):
            with torch.no_grad():
                bias = self.relative_bias(grid, window)
            self._bias_cache = ((grid, window), (self.rel_bias.detach().clone(),
                                                 self.rel_mask.clone()), bias)
        return bias

    def hard_targets(self) -> tuple[tuple[int, int], ...] | None:
        """The one offset each head attends to, when every head's mask keeps exactly one
        offset strictly inside the table (so no clipped offset shares it); else ``None``.
        Then ``A^h`` is exactly one-hot for any finite scores, and ``"sparse"`` applies.

        Under tracing (:func:`tracing`) the mask cannot be read: the answer is
        :attr:`known_targets`, and the sparse path asserts in the graph that the mask still
        keeps exactly those offsets."""
        if tracing():
            return self.known_targets
        if not _same(self._targets_mask, self.rel_mask):
            mask = self.rel_mask.flatten(1)
            targets = None
            if bool((mask.sum(1) == 1).all()):
                rows, cols = self.rel_mask.shape[1:]
                (lo_h, _), (lo_w, _) = self.offset_range
                flat = mask.to(torch.uint8).argmax(1).tolist()
                inside = [(i // cols, i % cols) for i in flat]
                if all(0 < i < rows - 1 and 0 < j < cols - 1 for i, j in inside):
                    targets = tuple((i + lo_h, j + lo_w) for i, j in inside)
            self._targets_mask = self.rel_mask.clone()
            self.known_targets = targets
        return self.known_targets

    def refresh_targets(self) -> tuple[tuple[int, int], ...] | None:
        """Recompute :attr:`known_targets` from the mask (eager only). Loading a state dict
        does it; call it after editing ``rel_mask`` by hand and before compiling or
        exporting, so that the traced graph reads the offsets the mask keeps."""
        self._targets_mask = None
        return self.hard_targets()

    def _one_hot(self, targets: Sequence[tuple[int, int]]) -> torch.Tensor:
        """The mask that keeps exactly ``targets[h]`` for head ``h``."""
        (lo_h, _), (lo_w, _) = self.offset_range
        mask = torch.zeros_like(self.rel_mask)
        for h, (da, db) in enumerate(targets):
            mask[h, da - lo_h, db - lo_w] = True
        return mask

    def _queries_keys(self, x: torch.Tensor, window: Window, frame: Frame = NO_FRAME
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-head queries ``(B, H, Nq, dk)`` of the window and keys ``(B, H, Nk, dk)`` of
        ``x`` framed by ``frame`` zero tokens (:func:`project_framed`)."""
        B = x.shape[0]
        top, left, hq, wq = window
        H, dk = self.num_heads, self.key_dim
        r, c = top - frame[0], left - frame[2]  # the window on x itself
        if 0 <= r and r + hq <= x.shape[1] and 0 <= c and c + wq <= x.shape[2]:
            q = self.query(x[:, r:r + hq, c:c + wq])
        else:  # some queries are frame tokens
            q = project_framed(self.query, x, frame)[:, top:top + hq, left:left + wq]
        k = project_framed(self.key, x, frame)
        q = q.reshape(B, hq * wq, H, dk).transpose(1, 2)
        return q, k.reshape(B, k.shape[1] * k.shape[2], H, dk).transpose(1, 2)

    def attention_weights(self, x: torch.Tensor, window: Window | None = None) -> torch.Tensor:
        """The attention matrices ``A^h``: ``(B, H, Nq, Nk)``, rows summing to 1 (computed
        explicitly, for inspection; forward never forms them on the sparse path)."""
        window = window or (0, 0, x.shape[1], x.shape[2])
        q, k = self._queries_keys(x, window)
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.key_dim)             # (B, H, Nq, Nk)
        scores = scores + self.relative_bias((x.shape[1], x.shape[2]), window)
        return scores.softmax(dim=-1)

    def path(self) -> str:
        """``"dense"`` or ``"sparse"``: what the next forward will run (see the module doc)."""
        if self.execution == "dense":
            return "dense"
        training = self.training and torch.is_grad_enabled()
        if self.execution == "auto" and training:
            return "dense"
        targets = self.hard_targets()
        if self.execution == "sparse" and targets is None:
            raise ValueError("execution='sparse' needs every head's mask to keep exactly "
                             "one offset inside the bias table (hard heads); this layer "
                             "has heads attending to several keys: use 'dense' or 'auto' "
                             "(after editing rel_mask by hand, call refresh_targets())")
        return "sparse" if targets is not None else "dense"

    def forward(self, x: torch.Tensor, window: Window | None = None,
                frame: Frame = NO_FRAME) -> torch.Tensor:
        """Attend from the queries in ``window`` to every token of ``x`` framed by zero tokens.

        Args:
            x: ``(B, Gh, Gw, d_in)`` tokens on a grid (the keys, and the queries' source).
            window: ``(top, left, height, width)`` of the query tokens on the framed grid;
                default all of it.
            frame: ``(top, bottom, left, right)``: rows and columns of zero tokens around
                ``x``; the same function as calling on ``x`` padded with them, with the
                projections of a zero token computed once, not per frame token (equal up
                to rounding: :func:`project_framed`).
        Returns:
            ``(B, height, width, d_out)``, the same on both paths up to rounding (exactly
            the same mathematics).
        Raises:
            ValueError: ``frame`` or ``window`` is not 4 non-negative ints, or the window
                leaves the framed grid (not checked while tracing, where sizes may be
                symbolic).
        """
        B, Gh, Gw, _ = x.shape
        if not tracing():
            frame = _four_ints("frame", frame, "(top, bottom, left, right)")
        grid = (frame[0] + Gh + frame[1], frame[2] + Gw + frame[3])
        window = (0, 0, *grid) if window is None else window
        if not tracing():
            window = _four_ints("window", window, "(top, left, height, width)")
            top, left, hq, wq = window
            if top + hq > grid[0] or left + wq > grid[1]:
                raise ValueError(f"window={window} leaves the {grid} grid of keys (x and its "
                                 f"frame {frame})")
        if self.path() == "sparse":
            mixed = self._sparse_mix(x, window, frame, grid)
        else:
            mixed = self._dense_mix(x, window, frame, grid)
        y = self.output(mixed)                                                 # (B, Nq, d_out)
        return y.reshape(B, window[2], window[3], y.shape[-1])

    def _sparse_mix(self, x: torch.Tensor, window: Window, frame: Frame,
                    grid: tuple[int, int]) -> torch.Tensor:
        """``sum_k A^h_qk v^h_k`` with one-hot ``A^h``: the value of key ``q + delta_h``."""
        B = x.shape[0]
        Gh, Gw = grid
        top, left, hq, wq = window
        if tracing():  # the graph reads known_targets: refuse a mask that keeps others
            if torch.jit.is_tracing():
                warnings.warn("torch.jit.trace keeps no assertion: the traced layer reads the "
                              "offsets known now even if its mask changes later, and lets "
                              "NaN input through; torch.export keeps both checks",
                              torch.jit.TracerWarning, stacklevel=2)
            torch._assert_async((self.rel_mask == self._one_hot(self.known_targets)).all(),
                                "the mask does not keep the one offset per head this graph "
                                "reads (call refresh_targets() after editing rel_mask)")
        values = project_framed(self.value, x, frame)                   # (B, Gh, Gw, sum dv)
        parts, start = [], 0
        for h, ((da, db), width) in enumerate(zip(self.hard_targets(), self.value_dims,
                                                  strict=True)):
            r, c = top + da, left + db
            if r < 0 or c < 0 or r + hq > Gh or c + wq > Gw:
                raise ValueError(f"head {h} masks every key of some query on a {(Gh, Gw)} "
                                 "grid: the frame is too small for its offset")
            parts.append(values[:, r:r + hq, c:c + wq, start:start + width])
            start += width
        mixed = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        return mixed.reshape(B, hq * wq, start)

    def _dense_mix(self, x: torch.Tensor, window: Window, frame: Frame,
                   grid: tuple[int, int]) -> torch.Tensor:
        """``sum_k A^h_qk v^h_k`` for every head, by fused attention per value width."""
        B = x.shape[0]
        Nk, Nq, H = grid[0] * grid[1], window[2] * window[3], self.num_heads
        q, k = self._queries_keys(x, window, frame)                             # (B, H, N, dk)
        values = project_framed(self.value, x, frame).reshape(B, Nk, sum(self.value_dims))
        bias = self._inference_bias(grid, window).to(q.dtype)                   # (H, Nq, Nk)
        if len(self._buckets) == 1 and len(self._buckets[0]) == H:  # equal widths
            v = values.view(B, Nk, H, self.value_dims[0]).transpose(1, 2)     # (B, H, Nk, dv)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            return out.transpose(1, 2).reshape(B, Nq, sum(self.value_dims))
        per_head = [values.new_zeros(B, Nq, 0)] * H
        heads_of = values.split(self.value_dims, dim=-1)
        for bucket in self._buckets:
            idx = torch.tensor(bucket, device=q.device)
            v = torch.stack([heads_of[h] for h in bucket], dim=1)               # (B, n, Nk, dv)
            out = F.scaled_dot_product_attention(q.index_select(1, idx), k.index_select(1, idx),
                                                 v, attn_mask=bias.index_select(0, idx))
            for i, h in enumerate(bucket):
                per_head[h] = out[:, i]                                         # (B, Nq, dv)
        return torch.cat(per_head, dim=-1)

    @torch.no_grad()
    def select_offsets(
        self, offsets: Sequence[tuple[int, int]], alpha: float | None = None
    ) -> None:
        """Make head ``h`` attend to relative offset ``offsets[h]`` (hard attention,
        docs/theory.md §2).

        ``alpha=None``: every other offset is masked (``-inf``), so ``A^h`` is exactly 1 on
        the target key. A finite ``alpha > 0``: no mask, the target scores 0 and every other
        key ``-alpha`` (the softmax-gap version of docs/theory.md §3.4); queries and keys are left
        as they are, so content-free scores need ``W_Q = W_K = 0`` set separately.
        """
        if len(offsets) != self.num_heads:
            raise ValueError(f"{len(offsets)} offsets for {self.num_heads} heads")
        if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"alpha={alpha} must be a finite positive score gap, or None")
        (lo_h, hi_h), (lo_w, hi_w) = self.offset_range
        for h, (da, db) in enumerate(offsets):
            # Targets must lie strictly inside the table: clipped far offsets share the
            # border entries, which must never be a target.
            if not (lo_h < da < hi_h and lo_w < db < hi_w):
                raise ValueError(f"offset {(da, db)} of head {h} is not strictly inside "
                                 f"offset_range={self.offset_range}")
            target = (h, da - lo_h, db - lo_w)
            if alpha is None:
                self.rel_bias[h] = 0.0
                self.rel_mask[h] = False
                self.rel_mask[target] = True
            else:
                self.rel_bias[h] = -alpha
                self.rel_bias[target] = 0.0
                self.rel_mask[h] = True
        self.known_targets = (tuple((int(da), int(db)) for da, db in offsets)
                              if alpha is None else None)

    @torch.no_grad()
    def set_distributions(self, offsets: Sequence[tuple[int, int]],
                          probabilities: torch.Tensor) -> None:
        """Make head ``h`` attend to ``offsets[i]`` with probability ``probabilities[h, i]``.

        The bias table holds ``log p`` at those offsets and every other offset is masked, so
        a content-free head's softmax returns exactly these probabilities (up to rounding).
        Rows must be probability vectors; zero entries are masked too.
        """
        if probabilities.shape != (self.num_heads, len(offsets)):
            raise ValueError(f"probabilities must have shape ({self.num_heads}, "
                             f"{len(offsets)}), got {tuple(probabilities.shape)}")
        if (probabilities < 0).any() or not torch.allclose(
                probabilities.sum(1), torch.ones(self.num_heads, dtype=probabilities.dtype)):
            raise ValueError("every row of probabilities must be a probability vector")
        (lo_h, hi_h), (lo_w, hi_w) = self.offset_range
        for da, db in offsets:
            if not (lo_h < da < hi_h and lo_w < db < hi_w):
                raise ValueError(f"offset {(da, db)} is not strictly inside "
                                 f"offset_range={self.offset_range}")
        self.rel_bias.zero_()
        self.rel_mask.fill_(False)
        self.known_targets = None
        for h in range(self.num_heads):
            for (da, db), p in zip(offsets, probabilities[h].tolist(), strict=True):
                if p > 0:
                    self.rel_mask[h, da - lo_h, db - lo_w] = True
                    self.rel_bias[h, da - lo_h, db - lo_w] = math.log(p)


def _four_ints(name: str, value: object, meaning: str) -> tuple[int, ...]:
    """``value`` as 4 non-negative ints (any integer type), or one ``ValueError``."""
    try:
        ints = tuple(operator.index(v) for v in value)
        bad = len(ints) != 4 or min(ints) < 0 or any(isinstance(v, bool) for v in value)
    except TypeError:
        bad = True
    if bad:
        raise ValueError(f"{name}={value!r} must be 4 non-negative ints {meaning}")
    return ints


def project_framed(projection: nn.Module, x: torch.Tensor, frame: Frame) -> torch.Tensor:
    """``projection`` of every token of ``x`` framed by zero tokens, ``(B, Gh', Gw', f)``:
    the interior projected as usual, the frame filled with the projection of one zero
    token (its bias, for a linear map), without paying for the frame's tokens (a training
    network's 7x7 grid framed to 9x9 has 81 tokens, 49 of them its own).

    The same products and sums as projecting the zero-padded grid, so equal up to
    rounding; not always bitwise: a BLAS may round a row differently with the number of
    rows multiplied at once (MKL does below about 8 rows), and in the backward pass the
    weight's gradient sums over fewer rows (grouped differently by the BLAS) and the
    bias's adds the interior's and the frame's parts in another order. With exact
    arithmetic (small integers) the two are identical, which is how the tests compare them."""
    B, Gh, Gw, d = x.shape
    inner = projection(x.reshape(B, Gh * Gw, d))
    f = inner.shape[-1]
    inner = inner.view(B, Gh, Gw, f)
    if not any(frame):
        return inner
    top, bottom, left, right = frame
    zero = projection(x.new_zeros(1, 1, d)).view(1, 1, 1, f)
    rows = torch.cat([zero.expand(B, top, Gw, f), inner, zero.expand(B, bottom, Gw, f)], 1)
    side = (B, top + Gh + bottom)
    return torch.cat([zero.expand(*side, left, f), rows, zero.expand(*side, right, f)], 2)
