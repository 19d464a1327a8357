using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Orleans.Concurrency;

namespace Orchestrator.Cli.Bench;

/// <summary>Reentrant so that every rank's call can wait inside the grain for the round's last contribution.</summary>
[Reentrant]
public sealed class ReduceBenchGrain : Grain, IReduceBenchGrain
{
    readonly Dictionary<long, Round> _rounds = [];

    sealed class Round(int length)
    {
        public float[] Sum { get; } = new float[length];
        public int Arrived { get; set; }
        public TaskCompletionSource<byte[]> Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    public Task<byte[]> Reduce(int ranks, long round, byte[] contribution)
    {
        if (!_rounds.TryGetValue(round, out var r)) _rounds[round] = r = new Round(contribution.Length / sizeof(float));
        var values = MemoryMarshal.Cast<byte, float>(contribution);
        TensorPrimitives.Add(r.Sum, values, r.Sum);
        if (++r.Arrived == ranks)
        {
            _rounds.Remove(round);
            r.Done.SetResult(MemoryMarshal.AsBytes(r.Sum.AsSpan()).ToArray());
        }
        return r.Done.Task;
    }
}
