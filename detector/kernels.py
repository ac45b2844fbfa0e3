"""numba kernels of the online threshold detector. Plain arrays in, plain arrays out; no Python objects.

One call processes one multi-channel block. All state that must survive between blocks lives in the
arrays of :class:`raphe.detector.online.Detector`, so detection on a stream cut into blocks of any size
gives exactly the events of one call on the whole stream.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NEGATIVE, POSITIVE, BOTH = 0, 1, 2

# indices into the per-channel int64 state
NEXT, RUN, LAST_EVENT, HEAD, COUNT, SEG_FILL, SEG_SKIP, SEGMENTS = range(8)
# indices into the per-channel count array
DROPPED_START, DROPPED_GAP, DROPPED_NONFINITE, DETECTED = range(4)


@njit(cache=True, nogil=True)
def _crossing(prev: float, x: float, thr: float, polarity: int) -> int:
    """+1 for a downward crossing, -1 for an upward one, 0 for none (per the selected polarity)."""
    if polarity != POSITIVE and x < thr <= prev:
        return 1
    if polarity != NEGATIVE and x > thr >= prev:
        return -1
    return 0


@njit(cache=True, nogil=True)
def _select(a, n, k):
    """The ``k``-th smallest of ``a[:n]`` (0-based), found in place by quickselect; ``a[:n]`` is
    reordered so that nothing before ``a[k]`` is larger and nothing after it smaller.

    np.median copies the segment and sorts it partially on every call. Here each pass partitions
    without a data-dependent branch (the comparison only moves the store index), because on noise
    the branch of a plain partition is mispredicted half the time and doubles the cost. The pivot is
    the median of three points at pseudo-random places: a fixed-position pivot takes quadratic time
    on some shapes a segment can have (a ramp up and back down: 0.7 ms instead of 8 us for 2000
    points). The values equal to the pivot are gathered after it, so that a flat or coarsely
    quantised segment ends in a few passes too.
    """
    lo, hi = 0, n - 1
    seed = 1
    while lo < hi:
        span = hi - lo + 1
        # a 64-bit LCG (Knuth's MMIX constants), wrapping: the draws only steer the time
        seed = seed * 6364136223846793005 + 1442695040888963407
        i0 = lo + ((seed >> 33) & 0x7FFFFFFF) % span
        seed = seed * 6364136223846793005 + 1442695040888963407
        i1 = lo + ((seed >> 33) & 0x7FFFFFFF) % span
        seed = seed * 6364136223846793005 + 1442695040888963407
        i2 = lo + ((seed >> 33) & 0x7FFFFFFF) % span
        if a[i1] < a[i0]:
            i0, i1 = i1, i0
        m = i1 if a[i1] <= a[i2] else (i2 if a[i0] <= a[i2] else i0)
        pivot = a[m]
        a[m] = a[hi]
        a[hi] = pivot
        store = lo
        for i in range(lo, hi):
            v = a[i]
            a[i] = a[store]
            a[store] = v
            store += v < pivot
        a[hi] = a[store]
        a[store] = pivot
        if k < store:
            hi = store - 1
            continue
        equal = store + 1
        for i in range(store + 1, hi + 1):
            v = a[i]
            a[i] = a[equal]
            a[equal] = v
            equal += v <= pivot
        if k < equal:
            return pivot
        lo = equal
    return a[k]


@njit(cache=True, nogil=True)
def _median(a, n):
    """The median of ``a[:n]`` (n > 0) as np.median takes it, the middle value or the mean of the two
    middle ones, so that a numpy reference finds the same number; ``a[:n]`` is reordered."""
    k = n // 2
    upper = _select(a, n, k)
    if n % 2 == 1:
        return upper
    lower = a[0]
    for i in range(1, k):
        if a[i] > lower:
            lower = a[i]
    return (lower + upper) / 2.0


@njit(cache=True, nogil=True)
def _robust_update(segment, n, scratch, baseline, sigma, c, k, offset, polarity, thresholds, first):
    """Median and MAD/0.6745 of a completed noise segment ``segment[:n]``, in float64 on ``scratch``;
    the new threshold: k sigma from the baseline (adaptive, k > 0), or ``offset`` from it (relative,
    k = 0). After a channel's ``first``, short segment the baseline only ever counts where it makes
    the threshold stricter than from zero: 50 ms can sit on a transient (a spike's tail, a seal
    settling), and a baseline raised by one let the noise cross for the next 0.5 s (25 false events
    in one benchmark trace)."""
    for i in range(n):
        scratch[i] = segment[i]
    med = _median(scratch, n)
    # the median of the deviations needs no order of them, so they overwrite the reordered points
    for i in range(n):
        scratch[i] = abs(scratch[i] - med)
    mad = _median(scratch, n) / 0.6745
    baseline[c] = med
    sigma[c] = mad
    if first:
        med = min(med, 0.0) if polarity == NEGATIVE else max(med, 0.0) if polarity == POSITIVE else 0.0
    if k > 0.0:
        thresholds[c] = med + k * mad if polarity == POSITIVE else med - k * mad
    else:
        thresholds[c] = med + offset


@njit(cache=True, nogil=True)
def detect_block(block, rows, starts, ring, state, prev, thresholds, pend_sample, pend_frac, pend_thr, pend_dir,
                 counts, seg, seg_len, seg_stride, first_len, first_stride, scratch, baseline, sigma, positions,
                 need_before, need_after, refractory, polarity, adaptive_k, relative_offset, out_channel, out_sample,
                 out_thr, out_amp, out_windows, row_stats):
    """Detect threshold crossings in ``block`` (rows x samples) and emit completed windows.

    Row ``i`` of the block is channel ``rows[i]`` of the state arrays, so a block may hold any subset
    of the channels, in any order. ``starts[i]`` is the sample_num of that row's first sample. A start that differs
    from the channel's expected next sample is a gap: its pending windows are discarded and counted,
    and detection needs one sample of history again. Returns the number of windows written.

    A window is anchored on the crossing interpolated between the two samples that straddle the
    threshold; ``positions`` are its points in input samples relative to that instant.

    The threshold is fixed (``thresholds`` as given), or follows the median of each completed noise
    segment: ``adaptive_k`` robust sigmas from it (adaptive_k > 0), or ``relative_offset`` from it
    (a finite relative_offset); until the first segment is complete no event is detected. A channel's
    first segment (since its state was zeroed) keeps every ``first_stride``-th finite sample until it
    holds ``first_len``, the later ones every ``seg_stride``-th until they hold ``seg_len``: so each
    spans its time in a bounded buffer and its median costs a bounded time. The medians are taken in
    float64 on ``scratch`` (at least as long as either segment).

    ``row_stats[i]`` receives, for row ``i`` of the block, what the signal checks need from the same
    pass: finite samples, their sum, their sum of squares, and how many lie beyond the threshold in
    force in the direction of the crossing (``polarity`` both: below it).
    """
    n_rows, n = block.shape
    mask = ring.shape[1] - 1
    n_points = positions.shape[0]
    pend_cap = pend_sample.shape[1]
    adaptive = adaptive_k > 0.0 or np.isfinite(relative_offset)
    out = 0
    for i in range(n_rows):
        c = rows[i]
        # State is kept in locals inside the sample loop (array elements would be reloaded and
        # stored on every sample) and written back once per channel.
        st = state[c]
        s0 = starts[i]
        run = st[RUN]
        count = st[COUNT]
        head = st[HEAD]
        last_event = st[LAST_EVENT]
        seg_fill = st[SEG_FILL]
        seg_skip = st[SEG_SKIP]
        segments = st[SEGMENTS]
        stride, length = (first_stride, first_len) if segments == 0 else (seg_stride, seg_len)
        if st[NEXT] != s0:
            if st[NEXT] >= 0:
                counts[c, DROPPED_GAP] += count
            count = 0
            run = 0
        p = prev[c]
        thr = thresholds[c]
        due = pend_sample[c, head] + need_after if count > 0 else -1
        n_finite = 0
        total = 0.0
        total_sq = 0.0
        beyond = 0
        for k in range(n):
            s = s0 + k
            x = block[i, k]
            ring[c, s & mask] = x
            if np.isfinite(x):
                n_finite += 1
                total += x
                total_sq += x * x
                if (x > thr) if polarity == POSITIVE else (x < thr):
                    beyond += 1
            run += 1
            if run > 1:
                direction = _crossing(p, x, thr, polarity)
                if direction != 0 and s - last_event >= refractory:
                    last_event = s
                    counts[c, DETECTED] += 1
                    if run - 1 < need_before:
                        counts[c, DROPPED_START] += 1
                    else:
                        slot = (head + count) % pend_cap
                        pend_sample[c, slot] = s
                        pend_frac[c, slot] = (p - thr) / (p - x)
                        pend_thr[c, slot] = thr
                        pend_dir[c, slot] = direction
                        if count == 0:
                            due = s + need_after
                        count += 1
            if adaptive and np.isfinite(x):
                seg_skip += 1
                if seg_skip == stride:
                    seg_skip = 0
                    seg[c, seg_fill] = x
                    seg_fill += 1
                    if seg_fill == length:
                        _robust_update(seg[c], length, scratch, baseline, sigma, c, adaptive_k, relative_offset,
                                       polarity, thresholds, segments == 0)
                        thr = thresholds[c]
                        seg_fill = 0
                        segments += 1
                        stride, length = seg_stride, seg_len
            while s == due:
                crossing = pend_sample[c, head]
                anchor = pend_frac[c, head] - 1.0
                finite = True
                extreme = 0.0
                for j in range(n_points):
                    relative = anchor + positions[j]
                    below = np.floor(relative)
                    f = relative - below
                    i0 = crossing + np.int64(below)
                    v = ring[c, i0 & mask]
                    if f > 0.0:
                        v = v + f * (ring[c, (i0 + 1) & mask] - v)
                    if not np.isfinite(v):
                        finite = False
                        break
                    out_windows[out, j] = v
                    if j == 0 or (pend_dir[c, head] > 0 and v < extreme) or (pend_dir[c, head] < 0 and v > extreme):
                        extreme = v
                if finite:
                    out_channel[out] = c
                    out_sample[out] = crossing
                    out_thr[out] = pend_thr[c, head]
                    out_amp[out] = extreme
                    out += 1
                else:
                    counts[c, DROPPED_NONFINITE] += 1
                head = (head + 1) % pend_cap
                count -= 1
                due = pend_sample[c, head] + need_after if count > 0 else -1
            p = x
        prev[c] = p
        row_stats[i, 0] = n_finite
        row_stats[i, 1] = total
        row_stats[i, 2] = total_sq
        row_stats[i, 3] = beyond
        st[NEXT] = s0 + n
        st[RUN] = run
        st[COUNT] = count
        st[HEAD] = head
        st[LAST_EVENT] = last_event
        st[SEG_FILL] = seg_fill
        st[SEG_SKIP] = seg_skip
        st[SEGMENTS] = segments
    return out
