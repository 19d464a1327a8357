namespace Orchestrator.Core.Coding;

/// <summary>One step's change to rows of a data shard: the rows, and old ⊕ new of their bytes, row after row.</summary>
public sealed record RowDelta(long Step, int[] Rows, byte[] Delta);

/// <summary>
/// A data shard (of a coding group, where its position is what the parities know it by): equally sized rows (a row holds a parameter row and its optimizer state, as
/// raw bytes) and the step of its latest committed update (<see cref="Version"/>).
/// An update is two-phase (see docs/erasure-coding.md): <see cref="Prepare"/> computes the new rows and the delta
/// without changing anything; the delta goes to every parity shard; only then <see cref="Commit"/> writes the
/// rows. A prepared update is kept until committed, so a retry re-sends the same delta.
/// </summary>
public sealed class DataShard(int index, int rowBytes, byte[] bytes, long version = 0)
{
    public int Index { get; } = index;
    public int RowBytes { get; } = rowBytes;
    public byte[] Bytes { get; } = bytes.Length % rowBytes == 0 ? bytes : throw new ArgumentException($"{bytes.Length} bytes is not a whole number of {rowBytes}-byte rows");
    public int Rows => Bytes.Length / RowBytes;
    public long Version { get; private set; } = version;

    /// <summary>The prepared, uncommitted update: its delta and the rows' new bytes.</summary>
    public (RowDelta Delta, byte[] NewRows)? Pending { get; private set; }

    public ReadOnlySpan<byte> Row(int row) => Bytes.AsSpan(row * RowBytes, RowBytes);

    /// <summary>
    /// Computes step <paramref name="step"/>'s new bytes for <paramref name="rows"/> (distinct) with
    /// <paramref name="update"/>(row index, its current bytes); returns the delta to send to the parities, or null
    /// if the shard already holds that step (a retried step is acknowledged without being applied twice).
    /// </summary>
    public RowDelta? Prepare(long step, int[] rows, Func<int, ReadOnlyMemory<byte>, byte[]> update)
    {
        if (step <= Version) return null;
        if (Pending is { } p)
        {
            if (p.Delta.Step == step) return p.Delta;
            throw new InvalidOperationException($"shard {Index}: step {p.Delta.Step} is still uncommitted; commit it before step {step}");
        }
        var fresh = new byte[rows.Length * RowBytes];
        for (int n = 0; n < rows.Length; n++)
        {
            var row = update(rows[n], Bytes.AsMemory(rows[n] * RowBytes, RowBytes));
            if (row.Length != RowBytes) throw new ArgumentException($"an updated row must have {RowBytes} bytes, got {row.Length}");
            row.CopyTo(fresh, n * RowBytes);
        }
        var delta = new byte[fresh.Length];
        for (int n = 0; n < rows.Length; n++)
            ErasureCode.Delta(Row(rows[n]), fresh.AsSpan(n * RowBytes, RowBytes)).CopyTo(delta, n * RowBytes);
        Pending = (new RowDelta(step, rows, delta), fresh);
        return Pending.Value.Delta;
    }

    /// <summary>Writes the prepared rows; call only once every parity shard has applied the delta.</summary>
    public void Commit()
    {
        if (Pending is not { } p) return;
        for (int n = 0; n < p.Delta.Rows.Length; n++)
            p.NewRows.AsSpan(n * RowBytes, RowBytes).CopyTo(Bytes.AsSpan(p.Delta.Rows[n] * RowBytes));
        Version = p.Delta.Step;
        Pending = null;
    }
}

/// <summary>
/// A parity shard of a coding group: the parity bytes, and per data shard the step of the latest delta applied
/// (<see cref="Applied"/>) with that delta kept, so it can be undone (XOR-style deltas are their own inverse).
/// </summary>
public sealed class ParityShard
{
    readonly ErasureCode _code;
    readonly int _rowBytes;
    readonly long[] _applied;
    readonly (RowDelta Delta, long Before)?[] _last;

    public ParityShard(int index, ErasureCode code, int rowBytes, byte[] bytes, IReadOnlyList<long> applied)
    {
        (Index, _code, _rowBytes, Bytes) = (index, code, rowBytes, bytes);
        _applied = applied.ToArray();
        _last = new (RowDelta, long)?[code.K];
    }

    public int Index { get; }
    public byte[] Bytes { get; }
    public IReadOnlyList<long> Applied => _applied;

    /// <summary>Per data shard, the latest delta applied (step = <see cref="Applied"/>) and the step applied before it.</summary>
    public IReadOnlyList<(RowDelta Delta, long Before)?> Last => _last;

    /// <summary>Applies a data shard's delta once: a delta of a step already applied is ignored (retries are safe).</summary>
    public bool Apply(int data, RowDelta d)
    {
        if (d.Step <= _applied[data]) return false;
        for (int n = 0; n < d.Rows.Length; n++)
            _code.ApplyDelta(Index, data, d.Delta.AsSpan(n * _rowBytes, _rowBytes), Bytes, d.Rows[n] * _rowBytes);
        _last[data] = (d, _applied[data]);
        _applied[data] = d.Step;
        return true;
    }

}

/// <summary>A read-only copy of a surviving data shard: its committed bytes and version, and its pending update.</summary>
public sealed record DataSnapshot(byte[] Bytes, long Version, RowDelta? Pending)
{
    public static DataSnapshot Of(DataShard d) => new(d.Bytes.ToArray(), d.Version, d.Pending?.Delta);
}

/// <summary>A read-only copy of a surviving parity shard: bytes, applied steps, and the latest delta per data shard.</summary>
public sealed record ParitySnapshot(byte[] Bytes, long[] Applied, (RowDelta Delta, long Before)?[] Last)
{
    public static ParitySnapshot Of(ParityShard p) => new(p.Bytes.ToArray(), p.Applied.ToArray(), p.Last.ToArray());
}

/// <summary>
/// Rebuilds lost shards from read-only snapshots of the survivors, which go on working meanwhile (no survivor
/// is changed or waited for; see docs/erasure-coding.md). Each data shard gets a target step: a survivor's
/// pending step (its update will commit: every parity either has its delta or will get it), else its version;
/// a lost shard's, the lowest step any surviving parity applied for it. On copies, each parity is brought to those
/// targets (a survivor's pending delta applied where missing, a delta beyond the target undone), which makes the
/// copies one consistent codeword; the lost shards are decoded from it.
/// </summary>
public static class SnapshotRecovery
{
    public sealed record Rebuilt(byte[][] Data, long[] Versions, byte[][] Parity);

    public static Rebuilt Rebuild(ErasureCode code, int rowBytes, IReadOnlyList<DataSnapshot?> data, IReadOnlyList<ParitySnapshot?> parity)
    {
        int k = code.K, r = code.R;
        var lost = data.Count(d => d is null) + parity.Count(p => p is null);
        if (lost > r) throw new InvalidOperationException($"{lost} shards of the group are lost; the code tolerates {r}");
        var surviving = Enumerable.Range(0, r).Where(j => parity[j] is not null).ToList();
        var targets = new long[k];
        for (int i = 0; i < k; i++)
            targets[i] = data[i] is { } d ? d.Pending?.Step ?? d.Version : surviving.Min(j => parity[j]!.Applied[i]);

        var shards = new byte[]?[k + r];
        for (int i = 0; i < k; i++)
        {
            if (data[i] is not { } d) continue;
            var bytes = d.Bytes.ToArray();
            // A survivor's pending update will commit: decode against its new rows (old ⊕ delta).
            if (d.Pending is { } pending)
                for (int n = 0; n < pending.Rows.Length; n++)
                {
                    var row = bytes.AsSpan(pending.Rows[n] * rowBytes, rowBytes);
                    System.Numerics.Tensors.TensorPrimitives.Xor(pending.Delta.AsSpan(n * rowBytes, rowBytes), row, row);
                }
            shards[i] = bytes;
        }
        foreach (var j in surviving)
        {
            var p = parity[j]!;
            var bytes = p.Bytes.ToArray();
            for (int i = 0; i < k; i++)
            {
                if (p.Applied[i] == targets[i]) continue;
                RowDelta delta;
                if (p.Applied[i] > targets[i])
                {
                    // Undo the delta it applied beyond the target: the step never committed everywhere.
                    if (p.Last[i] is not { } last || last.Before != targets[i])
                        throw new InvalidOperationException($"parity {j} is at step {p.Applied[i]} for data shard {i}, more than one step past {targets[i]}");
                    delta = last.Delta;
                }
                else
                {
                    // A survivor's pending delta that has not reached this parity yet.
                    if (data[i]?.Pending is not { } pending || pending.Step != targets[i] || p.Applied[i] != data[i]!.Version)
                        throw new InvalidOperationException($"parity {j} is at step {p.Applied[i]} for data shard {i}, which cannot be brought to {targets[i]}");
                    delta = pending;
                }
                for (int n = 0; n < delta.Rows.Length; n++)
                    code.ApplyDelta(j, i, delta.Delta.AsSpan(n * rowBytes, rowBytes), bytes, delta.Rows[n] * rowBytes);
            }
            shards[k + j] = bytes;
        }
        var full = code.Reconstruct(shards);
        return new Rebuilt(full[..k], targets, full[k..]);
    }
}
