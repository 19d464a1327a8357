using Microsoft.Extensions.Options;
using Orchestrator.Core.Scheduling;

namespace Orchestrator.Grains;

[GenerateSerializer, Alias("scheduler-state")]
public sealed class SchedulerState
{
    [Id(0)] public List<QueuedJob> Queue { get; set; } = [];
    [Id(1)] public List<string> Nodes { get; set; } = [];
    /// <summary>The assignment epoch (fencing token) of the latest placement; persisted so it never goes backwards.</summary>
    [Id(2)] public long LastAssignmentEpoch { get; set; }
    [Id(3)] public long PlacementsMade { get; set; }
    /// <summary>Placements being made: written before the jobs accept, cleared once the node has them.</summary>
    [Id(4)] public List<Assignment> InFlight { get; set; } = [];
}

/// <summary>
/// Keeps the queue and places jobs through <see cref="ISchedulingPolicy"/>. Calls out only to job, node and
/// index grains, none of which ever waits on the scheduler, so there are no call cycles.
/// A placement is made in three steps, safe against a crash between any two and against a duplicate
/// activation of this grain: record it as in flight; each job accepts it only while waiting (the job grain is
/// the authority); the node gets only the accepted members, and if it cannot take them they are requeued.
/// </summary>
public sealed class SchedulerGrain(
    [PersistentState("scheduler", StorageNames.State)] IPersistentState<SchedulerState> store,
    ISchedulingPolicy policy,
    IOptions<OrchestratorOptions> options,
    ILogger<SchedulerGrain> logger) : Grain, ISchedulerGrain
{
    const int ReconcileEveryTicks = 10;

    /// <summary>A waiting job this young is left to its submitter's enqueue (a sweep is queued as one batch).</summary>
    static readonly TimeSpan SubmissionGrace = TimeSpan.FromSeconds(15);
    SchedulerState S => store.State;
    DateTime _lastTick = DateTime.MinValue;
    int _ticks;
    // What the healthy nodes offer at most (as of the last pass), and the queued jobs found unable to run on it.
    ClusterShape _shape = ClusterShape.Unknown;
    DateTime _shapeAt = DateTime.MinValue;
    readonly Dictionary<string, AdmissionRefusal> _unschedulable = [];

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        await FinishInFlight();
        // One-way notifications can be lost with a silo; the index is the truth about which jobs wait.
        await ReconcileWithIndex();
    }

    public async Task Enqueue(QueuedJob job)
    {
        if (S.Queue.All(q => q.JobId != job.JobId))
        {
            S.Queue.Add(job);
            await store.WriteStateAsync();
        }
        await PlacePending();
    }

    public async Task EnqueueMany(IReadOnlyList<QueuedJob> jobs)
    {
        var added = jobs.Where(j => S.Queue.All(q => q.JobId != j.JobId)).ToList();
        if (added.Count > 0)
        {
            S.Queue.AddRange(added);
            await store.WriteStateAsync();
        }
        await PlacePending();
    }

    public async Task Withdraw(string jobId)
    {
        if (S.Queue.RemoveAll(q => q.JobId == jobId) > 0) await store.WriteStateAsync();
    }

    public async Task RegisterNode(string nodeId)
    {
        if (!S.Nodes.Contains(nodeId))
        {
            S.Nodes.Add(nodeId);
            await store.WriteStateAsync();
        }
        await PlacePending();
    }

    public Task Kick() => PlacePending();

    public async Task Tick()
    {
        // Every silo ticks; one pass per period is enough.
        if (DateTime.UtcNow - _lastTick < options.Value.SchedulerTickPeriod * 0.8) return;
        _lastTick = DateTime.UtcNow;
        await RescheduleFromDeadNodes();
        if (++_ticks % ReconcileEveryTicks == 0) await ReconcileWithIndex();
        await PlacePending();
    }

    public Task<SchedulerInfo> GetInfo() => Task.FromResult(new SchedulerInfo(S.Queue.ToList(), S.Nodes.ToList(), S.PlacementsMade));

    async Task RescheduleFromDeadNodes()
    {
        var timeout = options.Value.NodeHeartbeatTimeout;
        foreach (var nodeId in S.Nodes.ToList())
        {
            var lost = await GrainFactory.GetGrain<INodeGrain>(nodeId).CheckLiveness(timeout);
            foreach (var a in lost)
            {
                if (await GrainFactory.GetGrain<IJobGrain>(a.JobId).MarkLost(a.AssignmentEpoch, timeout) is { } entry
                    && S.Queue.All(q => q.JobId != entry.JobId))
                {
                    S.Queue.Add(entry);
                }
            }
            if (lost.Count > 0) await store.WriteStateAsync();
        }
    }

    /// <summary>Assigns accepted members to their node; if the node cannot take them, they go back to the queue.</summary>
    async Task GiveToNode(IReadOnlyList<Assignment> accepted)
    {
        if (accepted.Count == 0) return;
        if (await GrainFactory.GetGrain<INodeGrain>(accepted[0].NodeId).Assign(accepted))
        {
            S.PlacementsMade += accepted.Count;
            return;
        }
        foreach (var a in accepted)
        {
            if (await GrainFactory.GetGrain<IJobGrain>(a.JobId).Unschedule(a.AssignmentEpoch) is { } entry && S.Queue.All(q => q.JobId != entry.JobId))
                S.Queue.Add(entry);
        }
    }

    /// <summary>Completes placements a previous activation started: members the job accepted go to their node.</summary>
    async Task FinishInFlight()
    {
        if (S.InFlight.Count == 0) return;
        foreach (var array in S.InFlight.GroupBy(a => a.ArrayId).ToList())
        {
            var accepted = new List<Assignment>();
            foreach (var a in array)
            {
                var info = await GrainFactory.GetGrain<IJobGrain>(a.JobId).GetInfo();
                var taken = a.Gang ? info.Ranks?.Any(r => r.AssignmentEpoch == a.AssignmentEpoch) == true
                    : info.State == JobState.Scheduled && info.Assignment?.AssignmentEpoch == a.AssignmentEpoch;
                if (taken) accepted.Add(a);
            }
            await GiveToNode(accepted);
        }
        S.InFlight.Clear();
        await store.WriteStateAsync();
    }

    async Task ReconcileWithIndex()
    {
        var jobs = await GrainFactory.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).List();
        var byId = jobs.ToDictionary(j => j.JobId);
        var removed = S.Queue.RemoveAll(q => byId.TryGetValue(q.JobId, out var j) && !j.State.IsQueued() && !(q.Growth && j.State == JobState.Running));
        var missing = jobs.Where(j => j.State.IsQueued() && S.Queue.All(q => q.JobId != j.JobId)
                                      && (j.State == JobState.Recovering || DateTime.UtcNow - j.SubmittedAt > SubmissionGrace)).ToList();
        foreach (var j in missing)
        {
            if (await GrainFactory.GetGrain<IJobGrain>(j.JobId).GetQueueEntry() is { } entry) S.Queue.Add(entry);
        }
        if (removed > 0 || missing.Count > 0)
        {
            logger.SchedulerReconciled(removed, missing.Count);
            await store.WriteStateAsync();
        }
    }

    async Task PlacePending()
    {
        if (S.Queue.Count == 0 || S.Nodes.Count == 0) return;
        var capacity = new List<NodeCapacity>();
        var healthy = new List<(string, int, long)>();
        foreach (var nodeId in S.Nodes)
        {
            var info = await GrainFactory.GetGrain<INodeGrain>(nodeId).GetInfo();
            if (info.Health == NodeHealth.Healthy) healthy.Add(Offered(nodeId, info));
            // A node that has gone quiet is not given new work while the liveness check decides about it.
            if (info.Health != NodeHealth.Healthy || DateTime.UtcNow - info.LastHeartbeat > options.Value.RankSilenceLimit) continue;
            var busy = info.Assignments.Select(a => a.Device).ToHashSet();
            var perDevice = info.Devices.Count > 0 ? info.MemoryBytes / info.Devices.Count : 0;
            var running = info.Assignments.GroupBy(a => a.ArrayId)
                .Select(g => new RunningArray(g.First().Device, g.Select(a => a.JobId).ToList(), g.Max(a => a.Priority), Preemptible: !g.First().Gang))
                .ToList();
            capacity.Add(new NodeCapacity(nodeId, info.Devices.Where(d => !busy.Contains(d)).ToList(), perDevice, running));
        }
        (_shape, _shapeAt) = (ClusterShape.Of(healthy), DateTime.UtcNow);
        var queue = await Admissible(S.Queue.Select(q => new PendingJob(q.JobId, q.Priority, q.SubmitSequence, q.Devices, q.FusionKey, q.MemoryBytes, q.Gang, q.MaxDevices, q.Growth)));
        var decisionTime = System.Diagnostics.Stopwatch.StartNew();
        var decision = policy.Decide(queue, capacity);
        OrchestratorMetrics.SchedulingLatency.Observe(decisionTime.Elapsed.TotalSeconds);
        await Preempt(decision.Preemptions);
        var placements = decision.Placements;
        if (placements.Count == 0) return;
        // Running work carries its priority: a gang preempts only arrays of lower priority than its own (assignments
        // of priority 0 once let any gang preempt jobs of priority 1000, which were then placed again at once).
        var placedIds = placements.SelectMany(p => p.JobIds).ToHashSet();
        var priorityOf = queue.Where(q => placedIds.Contains(q.JobId)).ToDictionary(q => q.JobId, q => q.Priority);

        foreach (var p in placements)
        {
            if (S.Queue.FirstOrDefault(q => q.JobId == p.JobId) is { Gang: true } gang)
            {
                await PlaceGang(p, gang);
                continue;
            }
            var firstEpoch = S.LastAssignmentEpoch + 1;
            var members = p.JobIds.Select(id => new Assignment(id, p.NodeId, p.Devices[0], ++S.LastAssignmentEpoch, DateTime.UtcNow, $"array-{firstEpoch}", p.JobIds.Count,
                Priority: priorityOf.GetValueOrDefault(id))).ToList();
            S.InFlight.AddRange(members);
            await store.WriteStateAsync();
            var accepted = new List<Assignment>();
            foreach (var a in members)
            {
                if (await GrainFactory.GetGrain<IJobGrain>(a.JobId).MarkScheduled(a)) accepted.Add(a);
                S.Queue.RemoveAll(q => q.JobId == a.JobId);
            }
            await GiveToNode(accepted);
            S.InFlight.RemoveAll(members.Contains);
        }
        await store.WriteStateAsync();
    }

    /// <summary>
    /// The queued jobs the cluster as it is can run. The others are marked Unschedulable (once per reason) and left
    /// out of the pass, so that a gang larger than the cluster does not hold back every gang behind it; a job that
    /// fits again (a node came back) waits as before.
    /// </summary>
    async Task<List<PendingJob>> Admissible(IEnumerable<PendingJob> queue)
    {
        var admissible = new List<PendingJob>();
        foreach (var job in queue)
        {
            if (Admission.Check(job, _shape) is { } why)
            {
                if (_unschedulable.TryGetValue(job.JobId, out var known) && known == why) continue;
                _unschedulable[job.JobId] = why;
                logger.Unschedulable(job.JobId, why.Message);
                await GrainFactory.GetGrain<IJobGrain>(job.JobId).MarkUnschedulable(Unschedulable.From(why));
                continue;
            }
            if (_unschedulable.Remove(job.JobId)) await GrainFactory.GetGrain<IJobGrain>(job.JobId).MarkSchedulable();
            admissible.Add(job);
        }
        return admissible;
    }

    public async Task<ClusterSize> GetShape()
    {
        if (DateTime.UtcNow - _shapeAt > TimeSpan.FromSeconds(2))
        {
            var healthy = new List<(string, int, long)>();
            foreach (var nodeId in S.Nodes)
            {
                var info = await GrainFactory.GetGrain<INodeGrain>(nodeId).GetInfo();
                if (info.Health == NodeHealth.Healthy) healthy.Add(Offered(nodeId, info));
            }
            (_shape, _shapeAt) = (ClusterShape.Of(healthy), DateTime.UtcNow);
        }
        return ClusterSize.Of(_shape);
    }

    /// <summary>A healthy node's devices and the memory of each, for the cluster's shape.</summary>
    static (string Node, int Devices, long DeviceMemoryBytes) Offered(string nodeId, NodeInfo info) =>
        (nodeId, info.Devices.Count, info.Devices.Count > 0 ? info.MemoryBytes / info.Devices.Count : 0);

    /// <summary>A data-parallel job's ranks, one assignment per device: the job takes all of them or none, then each
    /// goes to its node (a rank a node cannot take is removed from the job again).</summary>
    async Task PlaceGang(Placement p, QueuedJob entry)
    {
        var ranks = p.Slots.Select(slot => new Assignment(p.JobId, slot.NodeId, slot.Device, ++S.LastAssignmentEpoch, DateTime.UtcNow, $"rank-{S.LastAssignmentEpoch}", 1,
            Gang: true, Priority: entry.Priority)).ToList();
        S.InFlight.AddRange(ranks);
        await store.WriteStateAsync();
        var accepted = await GrainFactory.GetGrain<IJobGrain>(p.JobId).MarkGangScheduled(ranks);
        S.Queue.RemoveAll(q => q.JobId == p.JobId);
        if (accepted)
        {
            foreach (var rank in ranks) await GiveToNode([rank]);
        }
        S.InFlight.RemoveAll(ranks.Contains);
    }

    /// <summary>Stops preemptible arrays so that a waiting gang of higher priority can start: each job checkpoints
    /// and goes back to the queue (see <see cref="IJobGrain.Preempt"/>).</summary>
    async Task Preempt(IReadOnlyList<Preemption> preemptions)
    {
        foreach (var p in preemptions)
        {
            foreach (var jobId in p.JobIds)
                await GrainFactory.GetGrain<IJobGrain>(jobId).Preempt(p.ForJobId);
        }
    }
}
