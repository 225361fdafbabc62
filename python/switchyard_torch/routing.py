"""The routing rules of one group, as plain Python over the group's router values.

Mirrors src/moe/routing.cpp (route_switch_top1, route_gshard_top2,
route_expert_choice, entropic_assignment + route_expert_choice_capped,
route_noisy_topk, the capacities) and the threshold rule of
src/moe/expert_choice.cpp, following docs/routing.md.

Inputs are lists of rows of Python floats (float64): switchyard's fp32 router
probabilities (or logits) converted to double, exactly as the C++ routers see them.
The arithmetic is done in the same order with the same libm functions, so the
selections (and the capped solver's assignment) are those of switchyard for the same
inputs. Outputs are selections only: lists of (token, expert) pairs in dispatch order
(expert-major, then slot order); the combine weights are computed by the caller
(moe.py) from differentiable tensors.
"""
import math


def token_choice_capacity(factor, k, S, E):
    """C = ceil(factor·k·S/E) clamped to [1, S]; factor <= 0: no limit (S)."""
    if factor <= 0:
        return S
    return min(max(int(math.ceil(factor * float(k * S) / E)), 1), S)


def expert_choice_capacity(c, S, E):
    """C = ceil(c·S/E) clamped to [1, S]."""
    return min(max(int(math.ceil(c * float(S) / E)), 1), S)


def argmax_row(row, skip=-1):
    """Largest entry other than `skip`; ties: the smaller index."""
    best = -1
    for e, v in enumerate(row):
        if e != skip and (best < 0 or v > row[best]):
            best = e
    return best


def first_fraction(p):
    """f_e: fraction of the group's tokens whose argmax is e (switch / gshard balance)."""
    S, E = len(p), len(p[0])
    f = [0.0] * E
    for row in p:
        f[argmax_row(row)] += 1.0 / S
    return f


def _flatten(slots):
    return [(t, e) for e, lst in enumerate(slots) for t in lst]


def route_switch_top1(p, capacity):
    """Argmax expert; slots filled in token order; a token at a full expert is dropped.
    Returns (choices, dropped)."""
    E = len(p[0])
    slots = [[] for _ in range(E)]
    dropped = 0
    for t, row in enumerate(p):
        e = argmax_row(row)
        if len(slots[e]) < capacity:
            slots[e].append(t)
        else:
            dropped += 1
    return _flatten(slots), dropped


def gshard_pairs(p):
    """Each token's (e1, e2): argmax, then argmax of the rest (ties: smaller index)."""
    pairs = []
    for row in p:
        e1 = argmax_row(row)
        pairs.append((e1, argmax_row(row, e1)))
    return pairs


def route_gshard_top2(p, capacity, second_uniform=None):
    """Pass 1: first choices in token order; pass 2: second choices in token order,
    with `second_uniform` (policy random) only where 2·g2 > u_t. Returns
    (choices, dropped, pairs)."""
    E = len(p[0])
    slots = [[] for _ in range(E)]
    pairs = gshard_pairs(p)
    dropped = 0

    def place(t, e):
        nonlocal dropped
        if len(slots[e]) < capacity:
            slots[e].append(t)
        else:
            dropped += 1

    for t, (e1, _) in enumerate(pairs):
        place(t, e1)
    for t, (e1, e2) in enumerate(pairs):
        a, b = p[t][e1], p[t][e2]
        g2 = b / (a + b)
        if second_uniform is None or 2.0 * g2 > float(second_uniform[t]):
            place(t, e2)
    return _flatten(slots), dropped, pairs


def top_tokens(a, e, C):
    """Tokens of column e by value descending, then token index ascending; first C."""
    return sorted(range(len(a)), key=lambda t: (-a[t][e], t))[:C]


def route_expert_choice(p, capacity):
    """Each expert takes its top-C tokens by p[:, e]."""
    E = len(p[0])
    return [(t, e) for e in range(E) for t in top_tokens(p, e, capacity)]


def route_threshold(p, thresholds):
    """Evaluation rule `threshold`: token t → expert e iff p_t[e] >= θ_e."""
    E = len(p[0])
    return [(t, e) for e in range(E) for t in range(len(p)) if p[t][e] >= thresholds[e]]


def _logistic(x):
    return 1.0 / (1.0 + math.exp(-x))


def _solve_multiplier(evaluate, target, lo, hi, start):
    """routing.cpp solve_multiplier: Newton with a bisection fallback inside [lo, hi]."""
    m = min(max(start, lo), hi)
    for _ in range(100):
        s, slope = evaluate(m)
        f = s - target
        if abs(f) <= 1e-9 * max(1.0, target):
            return m
        if f > 0:
            lo = m
        else:
            hi = m
        if hi - lo <= 1e-15 * max(1.0, abs(m)):
            return m
        newton = m - f / slope if slope < 0 else lo - 1.0
        m = newton if lo < newton < hi else 0.5 * (lo + hi)
    return m


def entropic_assignment(p, C, b, lam=1e-3, max_iterations=100):
    """A[t][e] = σ((P[t,e] − α_e − β_t)/λ), maximising ⟨P,A⟩ + λ·H(A) with rows
    summing to C and columns to at most b (routing.cpp entropic_assignment, line for
    line, so that A is bit-identical for the same P)."""
    S, E = len(p), len(p[0])
    alpha = [0.0] * E
    beta = [0.0] * S
    pad = 40.0 * lam

    def a_at(t, e, al, be):
        return _logistic((p[t][e] - al - be) / lam)

    for _ in range(max_iterations):
        for e in range(E):
            lo, hi = 1e30, -1e30
            for t in range(S):
                lo = min(lo, p[t][e] - beta[t] - pad)
                hi = max(hi, p[t][e] - beta[t] + pad)

            def row_sum(m, e=e):
                s = ds = 0.0
                for t in range(S):
                    a = a_at(t, e, m, beta[t])
                    s += a
                    ds -= a * (1 - a) / lam
                return s, ds

            alpha[e] = _solve_multiplier(row_sum, float(C), lo, hi, alpha[e])
        worst = 0.0
        for t in range(S):
            col = 0.0
            for e in range(E):
                col += a_at(t, e, alpha[e], 0.0)
            if col <= float(b):
                beta[t] = 0.0
                continue
            hi = 0.0
            for e in range(E):
                hi = max(hi, p[t][e] - alpha[e] + pad)

            def col_sum(m, t=t):
                s = ds = 0.0
                for e in range(E):
                    a = a_at(t, e, alpha[e], m)
                    s += a
                    ds -= a * (1 - a) / lam
                return s, ds

            beta[t] = _solve_multiplier(col_sum, float(b), 0.0, hi, beta[t])
        for e in range(E):
            row = 0.0
            for t in range(S):
                row += a_at(t, e, alpha[e], beta[t])
            worst = max(worst, abs(row - float(C)))
        if worst < 1e-3:
            break
    return [[a_at(t, e, alpha[e], beta[t]) for e in range(E)] for t in range(S)]


def fill_capped(A, C, b):
    """The pick of capped expert choice (routing.cpp fill_capped): a greedy pass over
    every (token, expert) pair in descending A (ties: token, then expert) under both
    caps (C per expert, b per token), then an augmenting path (breadth first over
    experts, tokens in descending A) for each expert still short. Returns, per
    expert, its tokens in descending A."""
    S, E = len(A), len(A[0])
    order = sorted(range(S * E), key=lambda i: (-A[i // E][i % E], i))
    taken = [False] * (S * E)
    per_token, per_expert = [0] * S, [0] * E
    for i in order:
        t, e = divmod(i, E)
        if per_expert[e] < C and per_token[t] < b:
            taken[i] = True
            per_expert[e] += 1
            per_token[t] += 1
    by_a = [[] for _ in range(E)]
    for i in order:
        by_a[i % E].append(i // E)
    for start in range(E):
        while per_expert[start] < C:
            frm, via = [-2] * E, [-1] * E
            frm[start] = -1
            queue, q = [start], 0
            end_e = end_t = -1
            while q < len(queue) and end_e < 0:
                e = queue[q]
                q += 1
                for t in by_a[e]:
                    if taken[t * E + e]:
                        continue
                    if per_token[t] < b:
                        end_e, end_t = e, t
                        break
                    for o in range(E):
                        if taken[t * E + o] and frm[o] == -2:
                            frm[o], via[o] = e, t
                            queue.append(o)
            if end_e < 0:
                break
            taken[end_t * E + end_e] = True
            per_token[end_t] += 1
            e = end_e
            while frm[e] >= 0:
                t = via[e]
                taken[t * E + e] = False
                taken[t * E + frm[e]] = True
                e = frm[e]
            per_expert[start] += 1
    picks = [[] for _ in range(E)]
    for i in order:
        if taken[i]:
            picks[i % E].append(i // E)
    return picks


def route_expert_choice_capped(p, capacity, b):
    """Capped expert choice: the entropic assignment A, then fill_capped's pick (every
    slot filled whenever an assignment exists). Returns (choices, empty_slots)."""
    E = len(p[0])
    A = entropic_assignment(p, capacity, b)
    picks = fill_capped(A, capacity, b)
    choices = [(t, e) for e in range(E) for t in picks[e]]
    return choices, E * capacity - len(choices)


def topk_of_row(row, k):
    """Indices of the k largest (ties: smaller index), largest first."""
    return sorted(range(len(row)), key=lambda e: (-row[e], e))[:k]


def route_noisy_topk(h, k, capacity):
    """Top-k of each row of h; capacity filled rank by rank, tokens in order.
    Returns (choices, dropped, topk) with topk[t] = the token's k experts."""
    E = len(h[0])
    topk = [topk_of_row(row, k) for row in h]
    slots = [[] for _ in range(E)]
    dropped = 0
    for j in range(k):
        for t in range(len(h)):
            e = topk[t][j]
            if len(slots[e]) < capacity:
                slots[e].append(t)
            else:
                dropped += 1
    return _flatten(slots), dropped, topk


def _gaps(values, cut):
    """Gap between the cut-th and (cut+1)-th largest of values (cut counted from 1):
    how far the selection at that boundary is from flipping (None: no boundary)."""
    if cut <= 0 or cut >= len(values):
        return None
    v = sorted(values, reverse=True)
    return v[cut - 1] - v[cut]


def decision_margins(router, p, z, capacity, top_k=2, thresholds=None):
    """The smallest margin of a group's value-dependent selections: how much a router
    value would have to move to change a selection (diagnostics: an implementation
    that computes the values slightly differently may flip a selection whose margin is
    at its rounding error). Exact ties (margin 0: identical inputs, broken by index
    alike everywhere) are counted apart. Capped expert choice is measured on P, not
    on the assignment A. Returns (smallest positive margin or None, exact ties)."""
    gaps = []
    E = len(p[0])
    if thresholds is not None:
        gaps = [abs(row[e] - thresholds[e]) for row in p for e in range(E)]
    elif router == "expert_choice":
        gaps = [_gaps([row[e] for row in p], capacity) for e in range(E)]
    else:
        k = {"switch_top1": 1, "gshard_top2": 2}.get(router, top_k)
        rows = z if router == "noisy_topk" else p
        for row in rows:
            gaps.append(_gaps(row, 1))
            if k > 1:
                gaps.append(_gaps(row, k))
    gaps = [g for g in gaps if g is not None]
    positive = [g for g in gaps if g > 0]
    return (min(positive) if positive else None), sum(1 for g in gaps if g == 0)
