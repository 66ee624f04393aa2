"""The catalogue of targeted mutants: one table, one wrong implementation per row.

Each mutant replaces one exact snippet of one file (it must occur exactly once) in a
temporary copy of the code. ``tests.mutants.gate`` runs ``vitconv verify --quick`` on each
copy and requires it to fail, and requires every obligation of the registry to be failed by
at least one mutant: a check no wrong implementation can fail is no check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    """``old`` (exactly once in ``path``) becomes ``new``; ``why`` says what is wrong."""

    name: str
    path: str
    old: str
    new: str
    why: str


CATALOGUE: tuple[Mutant, ...] = (
    # --- the offset lemma's printed formulas ---------------------------------------------
    Mutant("upper_formula", "theory/offset_lemma.py",
           "UPPER = sp.floor((P_sym - stride + b) / P_sym)",
           "UPPER = sp.floor((P_sym + b) / P_sym)",
           "printed upper end forgets the stride (the issue's own mutant)"),
    Mutant("lower_off_by_one", "theory/offset_lemma.py",
           "LOWER = sp.floor(-a / P_sym)", "LOWER = sp.floor(-a / P_sym) + 1",
           "printed lower end one offset too high"),
    Mutant("count_formula", "theory/offset_lemma.py",
           "COUNT_STRIDE_ONE = sp.ceiling(a / P_sym) + sp.ceiling(b / P_sym) + 1",
           "COUNT_STRIDE_ONE = sp.ceiling(a / P_sym) + sp.ceiling(b / P_sym) + 2",
           "printed head count per axis one too many"),
    # --- geometry and blocks -------------------------------------------------------------
    Mutant("in_patch_position", "theory/geometry.py",
           "TapPlacement(u, s, (u * self.stride + tap) // P, (u * self.stride + tap) % P)",
           "TapPlacement(u, s, (u * self.stride + tap) // P, (u * self.stride + tap + 1) % P)",
           "a tap lands one pixel off inside its patch"),
    Mutant("symbolic_sign_flip", "theory/construction.py",
           "M[row, col] = w[(o, c % cin_g, *bt.tap)]",
           "M[row, col] = -w[(o, c % cin_g, *bt.tap)]",
           "the symbolic blocks carry the kernel with the wrong sign"),
    Mutant("reflect_formula", "theory/construction.py",
           "return -pos if pos < 0 else 2 * (length - 1) - pos",
           "return -pos - 1 if pos < 0 else 2 * (length - 1) - pos",
           "symbolic reflect padding reads the mirror pixel one too far (symmetric mode)"),
    Mutant("factor_column_dropped", "numeric/blocks.py",
           "cols = nonzero.any(0).nonzero().flatten()",
           "cols = nonzero.any(0).nonzero().flatten()[:-1]",
           "the factorisation keeps one column too few (one rank too few)"),
    Mutant("reflect_filled_as_replicate", "numeric/patches.py",
           "x = F.pad(x, own, mode=padding_mode)",
           "x = F.pad(x, own, mode='replicate' if padding_mode == 'reflect' else padding_mode)",
           "reflect padding filled by replication"),
    Mutant("replicate_filled_with_zeros", "numeric/patches.py",
           "x = F.pad(x, own, mode=padding_mode)",
           "x = F.pad(x, own, mode='constant' if padding_mode == 'replicate' "
           "else padding_mode)",
           "replicate padding filled with zeros"),
    Mutant("circular_filled_with_zeros", "numeric/patches.py",
           "x = F.pad(x, own, mode=padding_mode)",
           "x = F.pad(x, own, mode='constant' if padding_mode == 'circular' "
           "else padding_mode)",
           "circular padding filled with zeros"),
    Mutant("zero_frame_filled_with_ones", "numeric/patches.py",
           "return F.pad(x, tuple(f - o for f, o in zip(frame, own, strict=True))), rows, cols",
           "return F.pad(x, tuple(f - o for f, o in zip(frame, own, strict=True)), "
           "value=1.0), rows, cols",
           "the zero frame of tokens holds ones"),
    # --- the attention layer -------------------------------------------------------------
    Mutant("bias_dropped", "numeric/conv_attention.py",
           "att.output.bias.copy_(bias.detach().repeat(pixels))",
           "att.output.bias.zero_()",
           "the convolution's bias is dropped"),
    Mutant("head_scaled", "numeric/conv_attention.py",
           "_copy_block(att.value.weight, (heads, slice(None)), f.value.transpose(-1, -2))",
           "_copy_block(att.value.weight, (heads, slice(None)), "
           "1.05 * f.value.transpose(-1, -2))",
           "every head's value weights scaled by 1.05"),
    # verify runs on the CPU, where a scatter is one index_add; the rounds of gathers that
    # CUDA and traced graphs run are held to it bitwise by tests/test_selection.py.
    Mutant("selection_overwrites", "numeric/selection.py",
           ".index_add(1, self.index, flat)", ".index_copy(1, self.index, flat)",
           "a stored selection overwrites where heads must add (compact layers)"),
    Mutant("selection_shifted", "numeric/selection.py",
           "y = x.index_select(-1, self.index)", "y = x.index_select(-1, self.index.roll(1))",
           "a stored gather reads its entries in the wrong slots (compact layers)"),
    Mutant("minimal_head_scaled", "numeric/conv_attention.py",
           "matrices = plan.matrices.to(dtype=conv.weight.dtype, device=conv.weight.device)",
           "matrices = 1.05 * plan.matrices.to(dtype=conv.weight.dtype, "
           "device=conv.weight.device)",
           "the minimal construction's heads scaled by 1.05 (the issue's own mutant)"),
    Mutant("positions_in_values", "numeric/attention.py",
           "values = project_framed(self.value, x, frame).reshape(B, Nk, sum(self.value_dims))",
           "values = project_framed(self.value, x, frame).reshape(B, Nk, sum(self.value_dims)) "
           "* torch.linspace(1, 2, Nk, dtype=x.dtype, device=x.device)[:, None]",
           "a value-side positional factor (positions enter the values)"),
    Mutant("positions_without_bias", "numeric/attention.py",
           "scores = q @ k.transpose(-1, -2) / math.sqrt(self.key_dim)",
           "scores = q @ k.transpose(-1, -2) / math.sqrt(self.key_dim) + torch.linspace("
           "0, 1, k.shape[-2], dtype=q.dtype, device=q.device)",
           "scores depend on absolute key positions outside the bias table"),
    # --- ranks and bounds ----------------------------------------------------------------
    Mutant("rank_off_by_one", "theory/exact_rank.py",
           "return RankCertificate(k, pivot_rows, tuple(pivot_cols), det, combinations)",
           "return RankCertificate(k + 1, pivot_rows, tuple(pivot_cols), det, combinations)",
           "exact rank reported one too high"),
    Mutant("span_collapsed", "theory/bounds.py",
           "        rows.append(row)",
           "        rows.append(row if not rows else rows[0])",
           "every offset's row replaced by the first: rho collapses to 1"),
    Mutant("upper_bound_low", "theory/bounds.py",
           "return min(geom.num_heads, E * pairs)",
           "return min(geom.num_heads, E * pairs - 1)",
           "the structural upper bound on rho one too low"),
    Mutant("unified_formula_wrong", "theory/bounds.py",
           "formula = min(geom.num_heads, (2 * patch_size - 1) ** 2 * in_channels * out_channels)",
           "formula = min(geom.num_heads, (2 * patch_size - 2) ** 2 * in_channels * out_channels)",
           "the unified formula's (2P-1)^2 becomes (2P-2)^2"),
    Mutant("generic_rank_plus_one", "theory/bounds.py",
           "return DomainMatrix.from_Matrix(sp.Matrix(span_rows(geom, w))).rank()",
           "return DomainMatrix.from_Matrix(sp.Matrix(span_rows(geom, w))).rank() + 1",
           "the generic rank over Q(w) one too high"),
    Mutant("certificate_kernel_flat", "theory/bounds.py",
           "return 3 if axis.taps[s] == 0 else 1",
           "return 1",
           "the rho = 9 certificate kernel loses its centre weight"),
    Mutant("certificate_entry_flat", "theory/smt.py",
           "z3.If(p == 0, 3, 1)", "z3.If(p == 0, 1, 1)",
           "the z3 model of the certificate loses its centre weight (det 0 at K = 2P+1)"),
    Mutant("pixel_offset_shifted", "theory/smt.py",
           "[_floor_is(delta, t, one), z3.Or(delta != t, t - delta * one != 0)]",
           "[_floor_is(delta, t + 1, one), z3.Or(delta != t, t - delta * one != 0)]",
           "pixel tap t claimed at offset t + 1"),
    Mutant("exact_weights_shifted", "numeric/rank.py",
           "Fraction(float(w[o, c, s, t]))",
           "Fraction(float(w[o, c, s, t]) + 1)",
           "the exact kernel is shifted by 1: zero taps are not zero"),
    Mutant("rho_plus_one", "numeric/minimal.py",
           "rank = exact_rank(rows).rank if rows else 0",
           "rank = exact_rank(rows).rank + 1 if rows else 0",
           "the minimal construction reports rho + 1 (the issue's own mutant)"),
    # --- quantitative statements ---------------------------------------------------------
    Mutant("gap_bound_halved", "theory/softmax_gap.py",
           "return float(_OFF_TARGET(keys, gap)) if gap < 700 else 0.0",
           "return 0.5 * float(_OFF_TARGET(keys, gap)) if gap < 700 else 0.0",
           "the softmax-gap bound halved"),
    Mutant("gap_formula", "theory/softmax_gap.py",
           "OFF_TARGET = (n - 1) / (sp.exp(alpha) + n - 1)",
           "OFF_TARGET = (n - 1) / (sp.exp(alpha) + n)",
           "the printed off-target mass is wrong"),
    Mutant("floor_formula", "theory/bounds.py",
           "(_FLOOR_I, FLOOR_H + 1, FLOOR_RHO)",
           "(_FLOOR_I, FLOOR_H, FLOOR_RHO)",
           "the printed floor sums from H instead of H + 1"),
    Mutant("floor_learning_rate_zero", "numeric/evidence/floor.py",
           "optimiser = torch.optim.Adam(model.parameters(), lr=lr)",
           "optimiser = torch.optim.Adam(model.parameters(), lr=0.0)",
           "the imitators are trained with learning rate 0"),
    # --- found by a hostile review: each survived an earlier version of the checks ----------
    Mutant("placement_wrong_beyond_4", "theory/geometry.py",
           "TapPlacement(u, s, (u * self.stride + tap) // P, (u * self.stride + tap) % P)",
           "TapPlacement(u, s, (u * self.stride + tap) // P, "
           "(u * self.stride + tap + (P > 4)) % P)",
           "taps land one pixel off, but only on patches larger than the sampled ones"),
    Mutant("smt_vacuous_hypotheses", "theory/smt.py",
           "domain = [Q >= 1, s >= 1, 0 <= u, u <= Q - 1, K >= 1,",
           "domain = [Q >= 1, s >= 1, 0 <= u, u <= -1, K >= 1,",
           "the index-arithmetic hypotheses admit no integers: every claim would be 'proved'"),
    Mutant("gap_layer_doubled", "numeric/attention.py",
           "self.rel_bias[h] = -alpha", "self.rel_bias[h] = -2 * alpha",
           "the finite-gap layer uses twice the gap it reports"),
    Mutant("floor_halved", "theory/bounds.py",
           "/ sp.Sum(FLOOR_SIGMA[_FLOOR_I] ** 2, (_FLOOR_I, 1, FLOOR_RHO)))",
           "/ (2 * sp.Sum(FLOOR_SIGMA[_FLOOR_I] ** 2, (_FLOOR_I, 1, FLOOR_RHO))))",
           "the printed floor is half the Eckart-Young error (too low always passes 'above')"),
    Mutant("gamma_inflated", "numeric/tolerances.py",
           "return nu / (1 - nu)", "return 1e4 * nu / (1 - nu)",
           "every rounding bound 10^4 times too wide"),
    Mutant("positivity_checker_weak", "theory/minimal_heads.py",
           "zi in zip(row, z, strict=True)) > 0 for row in rows)",
           "zi in zip(row, z, strict=True)) >= 0 for row in rows)",
           "the positive-vector checker accepts a zero entry (never met by the LP's vectors)"),
    Mutant("same_padding_model_wrong", "theory/smt.py",
           "return (K - 1) // 2, K - 1 - (K - 1) // 2",
           "return K // 2, K - 1 - K // 2",
           "the padding model of the rho = 9 proof is not what nn.Conv2d does for even K"),
    # --- execution paths and grouped weights (numeric/attention.py, grouped_linear.py) --
    Mutant("sparse_offsets_transposed", "numeric/attention.py",
           "r, c = top + da, left + db", "r, c = top + db, left + da",
           "the sparse path reads each head's key at the transposed offset"),
    Mutant("dense_heads_reordered", "numeric/attention.py",
           "per_head[h] = out[:, i]", "per_head[h] = out[:, len(bucket) - 1 - i]",
           "the dense path returns heads of equal width in reverse order"),
    Mutant("grouped_layout_group_major", "numeric/grouped_linear.py",
           "xs = x.reshape(rows, n, G, c)", "xs = x.reshape(rows, G, n, c).transpose(1, 2)",
           "grouped weights read a token group by group, not pixel by pixel"),
    Mutant("block_positions_reversed", "numeric/blocks.py",
           "return (flat[:, None] * channels + torch.arange(channels, device=device))",
           "return (flat[:, None] * channels + torch.arange(channels, device=device).flip(0))",
           "a block's stored rows and columns land on the wrong channels of their pixels"),
    Mutant("group_blocks_shuffled", "numeric/blocks.py",
           "per_group = weight.reshape(G, cout_g, cin_g, *weight.shape[2:])",
           "per_group = weight.reshape(G, cout_g, cin_g, *weight.shape[2:]).flip(0)",
           "each group's block is filled from another group's kernel"),
    # --- the Jacobian lemma and necessity ------------------------------------------------
    Mutant("lemma_side_scaled", "numeric/evidence/jacobian.py",
           "return sum(A[h][:, None, None] * W for h, W in enumerate(head_products(att)))",
           "return sum(A[h][:, None, None] * W * 1.001 "
           "for h, W in enumerate(head_products(att)))",
           "the lemma's side of the Jacobian comparison off by 0.1%"),
    Mutant("symbolic_lemma_drops_attention", "theory/jacobian.py",
           "return sum((self.attention(q, h, zero)[k] * p[\"WV\"] * p[\"WO\"]",
           "return sum((p[\"WV\"] * p[\"WO\"]",
           "the symbolic lemma forgets the attention weight"),
    Mutant("symbolic_scores_positional", "theory/jacobian.py",
           "+ p[\"B\"][k - q] for k in range(self.tokens)]",
           "+ p[\"B\"][k - q] + k for k in range(self.tokens)]",
           "the symbolic MHSA scores see absolute positions"),
    Mutant("shaw_embeddings_equal", "theory/jacobian.py",
           "r[1][0, 0]: sp.Integer(1)})",
           "r[1][0, 0]: sp.Integer(0)})",
           "the value-side counterexample uses equal embeddings (no counterexample)"),
)
