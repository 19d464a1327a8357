namespace Orchestrator.Cli.Bench;

/// <summary>
/// The baseline of `orch bench allreduce`: the same sum all-reduce done through grain calls (every rank sends its
/// buffer as bytes and receives the sum), to compare the control plane with the TCP data plane.
/// </summary>
[Alias("bench-reduce")]
public interface IReduceBenchGrain : IGrainWithStringKey
{
    /// <summary>Adds this rank's float32 contribution to round <paramref name="round"/>; returns the sum once all ranks sent theirs.</summary>
    [Alias("reduce")] Task<byte[]> Reduce(int ranks, long round, byte[] contribution);
}
