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
NEXT, RUN, LAST_EVENT, HEAD, COUNT, SEG_FILL = range(6)
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
def _robust_update(segment, baseline, sigma, c, k, offset, polarity, thresholds):
    """Median and MAD/0.6745 of a completed noise segment; the new threshold: k sigma from the
    baseline (adaptive, k > 0), or ``offset`` from it (relative, k = 0)."""
    med = np.median(segment)
    mad = np.median(np.abs(segment - med)) / 0.6745
    baseline[c] = med
    sigma[c] = mad
    if k > 0.0:
        thresholds[c] = med + k * mad if polarity == POSITIVE else med - k * mad
    else:
        thresholds[c] = med + offset


@njit(cache=True, nogil=True)
def detect_block(block, rows, starts, ring, state, prev, thresholds, pend_sample, pend_frac, pend_thr, pend_dir,
                 counts, seg, baseline, sigma, positions, need_before, need_after, refractory,
                 polarity, adaptive_k, relative_offset, out_channel, out_sample, out_thr, out_amp, out_windows,
                 row_stats):
    """Detect threshold crossings in ``block`` (rows x samples) and emit completed windows.

    Row ``i`` of the block is channel ``rows[i]`` of the state arrays, so a block may hold any subset
    of the channels, in any order. ``starts[i]`` is the sample_num of that row's first sample. A start that differs
    from the channel's expected next sample is a gap: its pending windows are discarded and counted,
    and detection needs one sample of history again. Returns the number of windows written.

    A window is anchored on the crossing interpolated between the two samples that straddle the
    threshold; ``positions`` are its points in input samples relative to that instant.

    The threshold is fixed (``thresholds`` as given), or follows the median of each completed noise
    segment: ``adaptive_k`` robust sigmas from it (adaptive_k > 0), or ``relative_offset`` from it
    (a finite relative_offset); until the first segment is complete no event is detected.

    ``row_stats[i]`` receives, for row ``i`` of the block, what the signal checks need from the same
    pass: finite samples, their sum, their sum of squares, and how many lie beyond the threshold in
    force in the direction of the crossing (``polarity`` both: below it).
    """
    n_rows, n = block.shape
    mask = ring.shape[1] - 1
    n_points = positions.shape[0]
    pend_cap = pend_sample.shape[1]
    seg_len = seg.shape[1]
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
                seg[c, seg_fill] = x
                seg_fill += 1
                if seg_fill == seg_len:
                    seg_fill = 0
                    _robust_update(seg[c], baseline, sigma, c, adaptive_k, relative_offset, polarity, thresholds)
                    thr = thresholds[c]
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
    return out
