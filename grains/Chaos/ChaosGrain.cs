using System.Diagnostics;

namespace Orchestrator.Grains;

/// <summary>Failure injection; <see cref="ChaosGate"/> refuses every call unless the silo runs with --allow-chaos.</summary>
public sealed class ChaosGrain(IClusterMembershipService membership, ILogger<ChaosGrain> log) : Grain, IChaosGrain
{
    public async Task<ChaosResult> KillSilo(string? silo)
    {
        var active = membership.CurrentSnapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress.ToParsableString()).Order().ToList();
        var target = silo ?? active[Random.Shared.Next(active.Count)];
        if (!active.Contains(target))
            throw new ArgumentException($"silo '{target}' is not an active silo of this cluster; active: {string.Join(", ", active)}");
        var pid = await GrainFactory.GetGrain<ISiloChaosGrain>(target).Crash();
        log.ChaosSiloCrash(target, pid);
        return new ChaosResult(target, $"silo {target} (process {pid}) crashed", DateTime.UtcNow);
    }

    public async Task<ChaosResult> FaultNode(string? node, NodeFault fault)
    {
        ArgumentNullException.ThrowIfNull(fault);
        fault.Validate();
        if (node is null)
        {
            var nodes = new List<string>();
            foreach (var id in (await GrainFactory.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).GetInfo()).Nodes)
                if ((await GrainFactory.GetGrain<INodeGrain>(id).GetInfo()).Health == NodeHealth.Healthy) nodes.Add(id);
            if (nodes.Count == 0) throw new InvalidOperationException("no healthy node to inject a fault into");
            node = nodes[Random.Shared.Next(nodes.Count)];
        }
        await GrainFactory.GetGrain<INodeGrain>(node).InjectFault(fault);
        log.ChaosNodeFault(fault.Kind, node);
        return new ChaosResult(node, $"{fault.Kind} for node {node}", DateTime.UtcNow);
    }

    public async Task<ChaosResult> NanGradients(string jobId, int rank, int steps)
    {
        var fault = new NodeFault(FaultKind.NanGradients, JobId: jobId, Steps: steps);
        fault.Validate();
        var job = await GrainFactory.GetGrain<IJobGrain>(jobId).GetInfo();
        if (job.Gang is not { } gang || rank < 0 || rank >= gang.Ranks.Count)
            throw new ArgumentException($"job {jobId} has no rank {rank} (it has {job.Gang?.Ranks.Count ?? 0} ranks in training)");
        var node = job.Ranks!.First(a => a.AssignmentEpoch == gang.Ranks[rank]).NodeId;
        return await FaultNode(node, fault);
    }
}

/// <summary>Crashes its own silo: SIGKILL to its own process, a moment after replying.</summary>
[SiloNamedByKeyPlacement]
public sealed class SiloChaosGrain : Grain, ISiloChaosGrain
{
    public Task<int> Crash()
    {
        _ = Task.Delay(100).ContinueWith(_ => Process.GetCurrentProcess().Kill(), TaskScheduler.Default);
        return Task.FromResult(Environment.ProcessId);
    }
}
