namespace Orchestrator.Grains;

[GenerateSerializer, Alias("node-state")]
public sealed class NodeGrainState
{
    [Id(0)] public List<string> Devices { get; set; } = [];
    [Id(1)] public long MemoryBytes { get; set; }
    [Id(2)] public List<Assignment> Assignments { get; set; } = [];
    [Id(3)] public NodeHealth Health { get; set; }
    [Id(4)] public string? Host { get; set; }
    [Id(5)] public int? ProcessId { get; set; }
    [Id(6)] public string? Incarnation { get; set; }
    /// <summary>The first heartbeat ever: the node's time in the cluster, for MTTF, counts from here.</summary>
    [Id(7)] public DateTime? FirstSeen { get; set; }
}

public sealed class NodeGrain(
    [PersistentState("node", StorageNames.State)] IPersistentState<NodeGrainState> store,
    Microsoft.Extensions.Options.IOptions<OrchestratorOptions> options,
    ILogger<NodeGrain> logger) : Grain, INodeGrain
{
    NodeGrainState S => store.State;
    string NodeId => this.GetPrimaryKeyString();

    // Not persisted: after a reactivation the worker gets a full timeout to reach the new activation.
    DateTime _lastHeartbeat = DateTime.UtcNow;
    bool _heardFrom;
    // Chaos faults waiting for the next heartbeat (not persisted: a fault is an experiment, not state).
    readonly List<NodeFault> _faults = [];
    // Jobs whose ranks here were found dead by their peers since the last heartbeat: lost with the node, if it is.
    readonly HashSet<string> _ranksLostSinceHeartbeat = [];

    public async Task<NodeDirective> Heartbeat(NodeReport report)
    {
        var silent = DateTime.UtcNow - _lastHeartbeat;
        _lastHeartbeat = DateTime.UtcNow;
        _heardFrom = true;
        var ranksLost = _ranksLostSinceHeartbeat.ToList();
        _ranksLostSinceHeartbeat.Clear();
        var changed = !store.RecordExists || S.Health == NodeHealth.Dead || S.Incarnation != report.Incarnation
                      || !S.Devices.SequenceEqual(report.Devices) || S.MemoryBytes != report.MemoryBytes;
        if (changed)
        {
            if (S.Health == NodeHealth.Dead) logger.NodeBack(NodeId, report.Incarnation);
            else if (S.Incarnation is { } before && before != report.Incarnation && (S.Assignments.Count > 0 || ranksLost.Count > 0))
                // Its worker process restarted before the heartbeat timeout: its work restarts from checkpoints.
                IncidentLogGrain.Report(GrainFactory, Incident.WorkerRestarted(NodeId, S.Assignments.Count, JobsHit(S.Assignments, ranksLost), ranksLost, silent), logger);
            S.Health = NodeHealth.Healthy;
            S.Devices = report.Devices.ToList();
            S.MemoryBytes = report.MemoryBytes;
            S.Host = report.Host;
            S.ProcessId = report.ProcessId;
            S.Incarnation = report.Incarnation;
            S.FirstSeen ??= DateTime.UtcNow;
            // Assignments on devices the node no longer has can never run there.
            S.Assignments.RemoveAll(a => !S.Devices.Contains(a.Device));
            await store.WriteStateAsync();
            await GrainFactory.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).RegisterNode(NodeId);
        }
        var faults = _faults.ToList();
        _faults.Clear();
        return new NodeDirective(S.Assignments.ToList(), faults, options.Value.NodeHeartbeatTimeout);
    }

    public Task InjectFault(NodeFault fault)
    {
        ArgumentNullException.ThrowIfNull(fault);
        fault.Validate();
        if (!store.RecordExists) throw new ArgumentException($"node '{NodeId}' is not known to this cluster");
        _faults.Add(fault);
        return Task.CompletedTask;
    }

    public Task<NodeInfo> GetInfo() => Task.FromResult(new NodeInfo(NodeId, S.Health, S.Devices.ToList(), S.MemoryBytes,
        _heardFrom ? _lastHeartbeat : null, S.Assignments.ToList(), S.Host, S.ProcessId, S.Incarnation, S.FirstSeen));

    public async Task<bool> Assign(IReadOnlyList<Assignment> members)
    {
        if (members.Count == 0 || !store.RecordExists || S.Health != NodeHealth.Healthy) return false;
        var (device, array) = (members[0].Device, members[0].ArrayId);
        if (!S.Devices.Contains(device) || members.Any(m => m.Device != device || m.ArrayId != array)) return false;
        // A device runs one array at a time; members that leave early do not make room for other jobs.
        if (S.Assignments.Any(x => x.Device == device && x.ArrayId != array)) return false;
        // A job placed again replaces its older placement here; ranks of one data-parallel job are distinct.
        var ids = members.Where(m => !m.Gang).Select(m => m.JobId).ToHashSet();
        S.Assignments.RemoveAll(x => !x.Gang && ids.Contains(x.JobId));
        S.Assignments.AddRange(members);
        await store.WriteStateAsync();
        return true;
    }

    public async Task Unassign(string jobId, long? assignmentEpoch)
    {
        if (S.Assignments.RemoveAll(x => x.JobId == jobId && (assignmentEpoch is null || x.AssignmentEpoch == assignmentEpoch)) > 0)
            await store.WriteStateAsync();
    }

    public async Task RankLost(string jobId, long assignmentEpoch)
    {
        await Unassign(jobId, assignmentEpoch);
        _ranksLostSinceHeartbeat.Add(jobId);
    }

    public async Task<IReadOnlyList<Assignment>> CheckLiveness(TimeSpan timeout)
    {
        if (!store.RecordExists || S.Health == NodeHealth.Dead || DateTime.UtcNow - _lastHeartbeat <= timeout) return [];
        var lost = S.Assignments.ToList();
        logger.NodeDeclaredDead(NodeId, timeout.TotalSeconds, lost.Count);
        S.Health = NodeHealth.Dead;
        S.Assignments.Clear();
        await store.WriteStateAsync();
        var ranksLost = _ranksLostSinceHeartbeat.ToList();
        _ranksLostSinceHeartbeat.Clear();
        IncidentLogGrain.Report(GrainFactory, Incident.NodeLost(NodeId, timeout, lost.Count, JobsHit(lost, ranksLost), ranksLost, DateTime.UtcNow - _lastHeartbeat), logger);
        return lost;
    }

    /// <summary>The jobs an incident hit: what the node still ran and the ranks its peers had removed first.</summary>
    static IReadOnlyList<string> JobsHit(IEnumerable<Assignment> held, IEnumerable<string> ranksLost) =>
        held.Select(a => a.JobId).Concat(ranksLost).Distinct().ToList();
}
