"""The evidence ``vitconv verify`` gathers, not the library a user imports.

Comparisons of a converted layer with its convolution (``checks``) and a float64 NumPy
reference (``reference``), hypothesis strategies over every ``Conv2d`` option
(``strategies``), the Jacobian lemma's numeric side (``jacobian``), the softmax-gap and
approximation-floor experiments (``gap``, ``floor``). ``vitconv.proofs`` turns them into
obligations; nothing in the library (``vitconv.numeric``) imports them.
"""
