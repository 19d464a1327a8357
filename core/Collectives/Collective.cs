using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace Orchestrator.Core.Collectives;

/// <summary>How data-parallel ranks combine their gradients.</summary>
public enum GradientCombine { Adasum, Average, Sum }

/// <summary>
/// All-reduce over a job's ranks on the data plane. Sum and average use a ring (reduce-scatter, then all-gather);
/// Adasum uses Horovod's vector-halving distance-doubling, per tensor, extended to any rank count by folding
/// the ranks beyond the largest power of two into partners first. In both, every element of the result is
/// computed by exactly one rank and then copied to the others, so all ranks end bit-identical.
/// </summary>
public sealed class Collective(IRankTransport transport)
{
    const int RingReduceTag = 100, RingGatherTag = 200, FoldTag = 300, HalveTag = 400, PartialsTag = 500, DoubleTag = 600, UnfoldTag = 700, BroadcastTag = 800, ExchangeTag = 900, BytesTag = 1000;

    int Rank => transport.Rank;
    int Size => transport.Size;

    // Kept between calls: a step's all-reduce reuses them instead of touching fresh pages every time.
    float[] _scratch = [];

    float[] Scratch(int length)
    {
        if (_scratch.Length < length) _scratch = new float[length];
        return _scratch;
    }

    public Task AllReduce(float[] buffer, TensorLayout layout, GradientCombine combine, long step, CancellationToken ct = default) =>
        combine == GradientCombine.Adasum
            ? AdasumAllReduce(buffer, layout, step, ct)
            : RingAllReduce(buffer, average: combine == GradientCombine.Average, step, ct);

    /// <summary>Ring all-reduce: after it, every rank holds the element-wise sum (or mean) of all ranks' buffers.</summary>
    public async Task RingAllReduce(float[] buffer, bool average, long step, CancellationToken ct = default)
    {
        int n = Size, r = Rank;
        if (n == 1) return;
        int Bound(int k) => (int)((long)buffer.Length * k / n);
        (int Offset, int Count) Segment(int k) => (Bound(k), Bound(k + 1) - Bound(k));
        int right = (r + 1) % n, left = (r + n - 1) % n;
        var incoming = Scratch(Segment(0).Count + 1);
        for (int s = 0; s < n - 1; s++)
        {
            var (sendOffset, sendCount) = Segment((r - s + n) % n);
            var (recvOffset, recvCount) = Segment((r - s - 1 + 2 * n) % n);
            var sending = transport.Send(right, step, RingReduceTag + s, FloatBytes.Of(buffer, sendOffset, sendCount), ct);
            await transport.Receive(left, step, RingReduceTag + s, FloatBytes.Of(incoming, 0, recvCount), ct);
            await sending;
            var own = buffer.AsSpan(recvOffset, recvCount);
            TensorPrimitives.Add(own, incoming.AsSpan(0, recvCount), own);
        }
        if (average)
        {
            var (offset, count) = Segment((r + 1) % n);
            TensorPrimitives.Divide(buffer.AsSpan(offset, count), n, buffer.AsSpan(offset, count));
        }
        for (int s = 0; s < n - 1; s++)
        {
            var (sendOffset, sendCount) = Segment((r + 1 - s + n) % n);
            var (recvOffset, recvCount) = Segment((r - s + n) % n);
            var sending = transport.Send(right, step, RingGatherTag + s, FloatBytes.Of(buffer, sendOffset, sendCount), ct);
            await transport.Receive(left, step, RingGatherTag + s, FloatBytes.Of(buffer, recvOffset, recvCount), ct);
            await sending;
        }
    }

    /// <summary>Adasum all-reduce over every rank; the result equals <see cref="AdasumReference"/>'s tree up to float rounding.</summary>
    public async Task AdasumAllReduce(float[] buffer, TensorLayout layout, long step, CancellationToken ct = default)
    {
        if (layout.Length != buffer.Length) throw new ArgumentException($"layout covers {layout.Length} values, the buffer has {buffer.Length}");
        int n = Size, r = Rank;
        if (n == 1) return;
        var p = AdasumReference.LargestPowerOfTwoAtMost(n);
        if (r >= p)
        {
            // Folded rank: its partner r − p combines for it and sends back the final result.
            await transport.Send(r - p, step, FoldTag, FloatBytes.Of(buffer, 0, buffer.Length), ct);
            await transport.Receive(r - p, step, UnfoldTag, FloatBytes.Of(buffer, 0, buffer.Length), ct);
            return;
        }
        var scratch = Scratch(buffer.Length);
        if (r < n - p)
        {
            await transport.Receive(r + p, step, FoldTag, FloatBytes.Of(scratch, 0, buffer.Length), ct);
            Adasum.Pairwise(buffer, scratch, layout);
        }

        // Reduce-scatter: halve the range each level, combining with the partner r XOR d.
        int lo = 0, hi = buffer.Length, level = 0;
        var ranges = new Stack<(int Lo, int Hi)>();
        for (int d = 1; d < p; d <<= 1, level++)
        {
            int partner = r ^ d, mid = lo + (hi - lo) / 2;
            var left = (r & d) == 0;
            var (keepLo, keepHi) = left ? (lo, mid) : (mid, hi);
            var (giveLo, giveHi) = left ? (mid, hi) : (lo, mid);
            var sending = transport.Send(partner, step, HalveTag + level, FloatBytes.Of(buffer, giveLo, giveHi - giveLo), ct);
            await transport.Receive(partner, step, HalveTag + level, FloatBytes.Of(scratch, keepLo, keepHi - keepLo), ct);
            await sending;

            // Per tensor: partial sums over the slice this rank keeps ("a" is always the lower subtree's data).
            var partials = new Adasum.Partials[layout.Tensors.Count];
            for (int t = 0; t < partials.Length; t++)
            {
                var (from, to) = Overlap(layout.Tensors[t], keepLo, keepHi);
                if (from >= to) continue;
                var own = buffer.AsSpan(from, to - from);
                var other = scratch.AsSpan(from, to - from);
                partials[t] = left ? Adasum.Measure(own, other) : Adasum.Measure(other, own);
            }
            var totals = await SumOverGroup(partials, groupSize: 2 * d, step, PartialsTag + level, ct);
            for (int t = 0; t < partials.Length; t++)
            {
                var (from, to) = Overlap(layout.Tensors[t], keepLo, keepHi);
                if (from >= to) continue;
                var (ca, cb) = Adasum.Coefficients(totals[t]);
                Adasum.Combine(buffer.AsSpan(from, to - from), scratch.AsSpan(from, to - from), left ? ca : cb, left ? cb : ca);
            }
            ranges.Push((lo, hi));
            (lo, hi) = (keepLo, keepHi);
        }

        // All-gather: double the range each level, in reverse.
        for (int d = p >> 1; d >= 1; d >>= 1)
        {
            level--;
            var partner = r ^ d;
            var (outerLo, outerHi) = ranges.Pop();
            var (theirsLo, theirsHi) = (r & d) == 0 ? (hi, outerHi) : (outerLo, lo);
            var sending = transport.Send(partner, step, DoubleTag + level, FloatBytes.Of(buffer, lo, hi - lo), ct);
            await transport.Receive(partner, step, DoubleTag + level, FloatBytes.Of(buffer, theirsLo, theirsHi - theirsLo), ct);
            await sending;
            (lo, hi) = (outerLo, outerHi);
        }
        if (r < n - p) await transport.Send(r + p, step, UnfoldTag, FloatBytes.Of(buffer, 0, buffer.Length), ct);
    }

    static (int From, int To) Overlap((int Offset, int Length) tensor, int lo, int hi) =>
        (Math.Max(tensor.Offset, lo), Math.Min(tensor.Offset + tensor.Length, hi));

    /// <summary>
    /// Sums every group member's partials (the group: the <paramref name="groupSize"/> ranks that share this rank's
    /// high bits), in rank order, so every member gets bit-identical totals and thus identical coefficients.
    /// </summary>
    async Task<Adasum.Partials[]> SumOverGroup(Adasum.Partials[] mine, int groupSize, long step, int tag, CancellationToken ct)
    {
        var start = Rank & ~(groupSize - 1);
        var bytes = MemoryMarshal.AsBytes(mine.AsSpan()).ToArray();
        var sends = new List<Task>();
        for (int g = start; g < start + groupSize; g++)
            if (g != Rank) sends.Add(transport.Send(g, step, tag, bytes, ct).AsTask());
        var all = new Adasum.Partials[groupSize][];
        all[Rank - start] = mine;
        for (int g = start; g < start + groupSize; g++)
        {
            if (g == Rank) continue;
            var received = new byte[bytes.Length];
            await transport.Receive(g, step, tag, received, ct);
            all[g - start] = MemoryMarshal.Cast<byte, Adasum.Partials>(received).ToArray();
        }
        await Task.WhenAll(sends);
        var totals = new Adasum.Partials[mine.Length];
        foreach (var member in all)
            for (int t = 0; t < totals.Length; t++) totals[t] += member[t];
        return totals;
    }

    /// <summary>True if no value is NaN or infinite (a rank's gradients are checked before they are applied).</summary>
    public static bool AllFinite(ReadOnlySpan<float> values)
    {
        foreach (var v in values) if (!float.IsFinite(v)) return false;
        return true;
    }

    /// <summary>
    /// Called by every rank when a step's combined gradients are not finite (every rank sees the same combination,
    /// so every rank calls it): which ranks' own gradients were not finite. All ranks, if none was (an overflow in
    /// the combination itself).
    /// </summary>
    public async Task<int[]> NonFiniteRanks(bool mineFinite, long step, CancellationToken ct = default)
    {
        var flags = await Exchange(mineFinite ? 0 : 1, NonFiniteStepBase - step, ct);
        var ranks = Enumerable.Range(0, Size).Where(r => flags[r] != 0).ToArray();
        return ranks.Length > 0 ? ranks : Enumerable.Range(0, Size).ToArray();
    }

    /// <summary>The exchange about a non-finite step uses step numbers no training step has.</summary>
    const long NonFiniteStepBase = -1000;

    /// <summary>Copies the root's buffer to every rank (parameters and optimizer state for a joining rank).</summary>
    public async Task Broadcast(float[] buffer, int root, long step, CancellationToken ct = default)
    {
        if (Size == 1) return;
        if (Rank == root)
        {
            await Task.WhenAll(Enumerable.Range(0, Size).Where(r => r != root)
                .Select(r => transport.Send(r, step, BroadcastTag, FloatBytes.Of(buffer, 0, buffer.Length), ct).AsTask()));
        }
        else
        {
            await transport.Receive(root, step, BroadcastTag, FloatBytes.Of(buffer, 0, buffer.Length), ct);
        }
    }

    /// <summary>Every rank's <paramref name="value"/>, by rank (a small all-gather, for agreeing on a new membership epoch's state).</summary>
    public async Task<long[]> Exchange(long value, long step, CancellationToken ct = default)
    {
        var all = new long[Size];
        all[Rank] = value;
        var mine = BitConverter.GetBytes(value);
        var sends = Enumerable.Range(0, Size).Where(r => r != Rank).Select(r => transport.Send(r, step, ExchangeTag, mine, ct).AsTask()).ToList();
        var buffer = new byte[sizeof(long)];
        for (int r = 0; r < Size; r++)
        {
            if (r == Rank) continue;
            await transport.Receive(r, step, ExchangeTag, buffer, ct);
            all[r] = BitConverter.ToInt64(buffer);
        }
        await Task.WhenAll(sends);
        return all;
    }

    /// <summary>Copies the root's bytes to every rank; returns them on every rank. A receiver accepts at most
    /// <paramref name="maxBytes"/> (what the caller knows the payload can be): a longer length is refused before
    /// anything is allocated.</summary>
    public async Task<byte[]> Broadcast(byte[]? payload, int root, long step, long maxBytes, CancellationToken ct = default)
    {
        if (Rank == root)
        {
            ArgumentNullException.ThrowIfNull(payload);
            if (payload.Length > maxBytes) throw new ArgumentException($"a broadcast of {payload.Length} bytes is longer than the {maxBytes} its receivers accept", nameof(payload));
            var announced = BitConverter.GetBytes((long)payload.Length);
            await Task.WhenAll(Enumerable.Range(0, Size).Where(r => r != root).Select(async r =>
            {
                await transport.Send(r, step, BytesTag, announced, ct);
                await transport.Send(r, step, BytesTag + 1, payload, ct);
            }));
            return payload;
        }
        var header = new byte[sizeof(long)];
        await transport.Receive(root, step, BytesTag, header, ct);
        var length = BitConverter.ToInt64(header);
        if (length < 0 || length > Math.Min(maxBytes, Array.MaxLength))
            throw new PeerFailedException(root, Reliability.PeerFailure.BadFrame, $"rank {Rank}: rank {root} announced a broadcast of {length} bytes for step {step}; at most {maxBytes} are expected");
        var received = new byte[length];
        await transport.Receive(root, step, BytesTag + 1, received, ct);
        return received;
    }
}
