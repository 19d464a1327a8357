namespace Orchestrator.Worker;

/// <summary>
/// One array member's line to its job grain: it starts the member, then sends its latest progress and
/// checkpoint from an async loop (the training thread only drops them in a mailbox), and finally its outcome.
/// A stop from the cluster (cancelled, or a stale assignment) is passed to the training thread. Checkpoints go to the
/// checkpoint store; the job grain gets their references.
/// </summary>
public sealed class MemberChannel(IGrainFactory grains, Assignment assignment, ICheckpointStore checkpoints, ILogger log)
{
    static readonly TimeSpan ReportPeriod = TimeSpan.FromSeconds(2);
    readonly SemaphoreSlim _wake = new(0);
    readonly TaskCompletionSource<MemberOutcome> _outcome = new(TaskCreationOptions.RunContinuationsAsynchronously);
    volatile JobProgress? _progress;
    volatile JobCheckpoint? _checkpoint;
    volatile string? _stopReason;

    public Assignment Assignment => assignment;
    public string JobId => assignment.JobId;
    public long Step => _progress?.Step ?? 0;

    /// <summary>Set when the member must leave the array at the next step.</summary>
    public string? StopReason => _stopReason;

    /// <summary>True once the member's outcome is known (it no longer trains).</summary>
    public bool Ended => _outcome.Task.IsCompleted;

    /// <summary>True once the cluster knows how the member ended (or refused it), so it must not be run again here.</summary>
    public bool Settled { get; private set; }

    IJobGrain Job => grains.GetGrain<IJobGrain>(assignment.JobId);

    /// <param name="runAgainIfWanted">The member stops for a reason of this node (it lost the cluster), not of the job:
    /// if its assignment is still here once the cluster answers, the node runs it again.</param>
    public void RequestStop(string reason, bool runAgainIfWanted = false)
    {
        _stopReason ??= reason;
        _runAgain |= runAgainIfWanted;
        _wake.Release();
    }

    bool _runAgain;

    /// <summary>Asks the job grain to start; null when the assignment is refused (stale) or unreachable.</summary>
    public async Task<StartReply?> Start()
    {
        try
        {
            var reply = await Job.Start(assignment.AssignmentEpoch, assignment.NodeId);
            if (reply.Refused is not { } why) return reply;
            log.AssignmentRefused(JobId, assignment.AssignmentEpoch, why.Cause, why.Message);
            Settled = true;
            await grains.GetGrain<INodeGrain>(assignment.NodeId).Unassign(JobId, assignment.AssignmentEpoch);
        }
        catch (Exception e)
        {
            log.NotStarted(JobId, e);
        }
        _outcome.TrySetResult(MemberOutcome.Stopped("not started"));
        return null;
    }

    /// <summary>
    /// The newest of the reply's checkpoints that reads back intact from the store (an older one if it does not), or
    /// null when the job has none: it starts afresh.
    /// </summary>
    /// <exception cref="CheckpointUnreadableException">The job has checkpoints and none can be read: starting afresh
    /// would silently throw its training away.</exception>
    public async Task<byte[]?> ReadCheckpoint(StartReply reply, CancellationToken ct = default)
    {
        if (reply.Checkpoints.Count == 0) return null;
        var problems = new List<string>();
        foreach (var cp in reply.Checkpoints)
        {
            try
            {
                var data = await checkpoints.Read(new StoredCheckpoint(cp.Key, cp.Bytes, cp.Sha256), ct);
                if (problems.Count > 0) log.CheckpointFallback(JobId, cp.Step, reply.Checkpoints[0].Step);
                return data;
            }
            catch (CheckpointUnreadableException e)
            {
                log.CheckpointUnreadable(JobId, cp.Step, e.Message);
                problems.Add(e.Message);
            }
        }
        throw new CheckpointUnreadableException($"none of the job's {problems.Count} checkpoints in the {checkpoints.Location} can be read: {string.Join("; ", problems)}");
    }

    public void Post(JobProgress progress) => _progress = progress;

    public void Post(JobCheckpoint checkpoint)
    {
        _checkpoint = checkpoint;
        _wake.Release();
    }

    public void End(MemberOutcome outcome)
    {
        _outcome.TrySetResult(outcome);
        _wake.Release();
    }

    /// <summary>Reports until the member ends, then delivers its outcome.</summary>
    public async Task Run()
    {
        var assignmentEpoch = assignment.AssignmentEpoch;
        JobProgress? sentProgress = null;
        JobCheckpoint? sentCheckpoint = null;
        while (true)
        {
            var ended = _outcome.Task.IsCompleted;
            try
            {
                if (_checkpoint is { } cp && cp != sentCheckpoint && !ended)
                {
                    var stored = await Store(cp);
                    // A checkpoint the store refused is not tried again: the next one, some steps later, is.
                    sentCheckpoint = cp;
                    if (stored is not null) Apply(await Job.SaveCheckpoint(assignmentEpoch, stored));
                }
                if (_progress is { } p && p != sentProgress)
                {
                    Apply(await Job.ReportProgress(assignmentEpoch, p));
                    sentProgress = p;
                }
            }
            catch (Exception e)
            {
                // Reports are best effort: training goes on and the next report carries the latest state. (An error
                // escaping here once ended the member silently, its result never delivered.)
                log.ReportNotDelivered(JobId, e.GetType().Name, e.GetBaseException().Message);
            }
            if (ended) break;
            await _wake.WaitAsync(ReportPeriod);
        }
        await Deliver(await _outcome.Task);
    }

    (JobCheckpoint Payload, CheckpointRef Reference)? _stored;

    /// <summary>Writes the checkpoint to the store (once) and returns its reference; null if the store refused it.</summary>
    async Task<CheckpointRef?> Store(JobCheckpoint cp)
    {
        if (_stored is { } done && done.Payload == cp) return done.Reference;
        try
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var stored = await checkpoints.Write(JobId, cp.Step, cp.Data);
            log.CheckpointWritten(JobId, cp.Step, stored.Bytes, stored.Bytes / 1e6 / Math.Max(clock.Elapsed.TotalSeconds, 1e-6));
            var reference = new CheckpointRef(cp.Step, stored.Key, stored.Bytes, stored.Sha256, cp.At);
            _stored = (cp, reference);
            return reference;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            log.CheckpointNotWritten(JobId, cp.Step, checkpoints.Location, e);
            return null;
        }
    }

    void Apply(WorkAck ack)
    {
        if (ack.Stop is not { } stop) return;
        YieldRequested |= ack.Yield;
        RequestStop(stop.Message);
    }

    /// <summary>The member was preempted: on leaving, it hands its latest checkpoint back (see <see cref="IJobGrain.Yield"/>).</summary>
    public bool YieldRequested { get; private set; }

    async Task Deliver(MemberOutcome outcome)
    {
        var assignmentEpoch = assignment.AssignmentEpoch;
        try
        {
            switch (outcome)
            {
                case { Result: { } result }:
                    await Job.Complete(assignmentEpoch, result);
                    log.JobSucceeded(JobId, result.TestAccuracy);
                    break;
                case { Failure: { } failure }:
                    await Job.Fail(assignmentEpoch, failure);
                    log.JobFailed(JobId, failure.Cause, failure.Message);
                    break;
                case { StopReason: { } reason } when YieldRequested:
                    // Without a stored checkpoint the job resumes from its last one.
                    var stored = _checkpoint is { } cp ? await Store(cp) : null;
                    await Job.Yield(assignmentEpoch, stored);
                    log.JobYielded(JobId, stored?.Step ?? -1, reason);
                    break;
                default:
                    log.JobStopped(JobId, outcome.StopReason);
                    if (_runAgain) return;
                    break;
            }
            Settled = true;
        }
        catch (Exception e)
        {
            // The node keeps the assignment; the next reconcile starts the job again from its checkpoint.
            log.OutcomeNotReported(JobId, e);
        }
    }
}

/// <summary>Model and optimizer state at <see cref="Step"/> in the worker's checkpoint format, before it is stored.</summary>
public sealed record JobCheckpoint(long Step, byte[] Data, DateTime At);

/// <summary>How a member left its array: succeeded with a result, failed with a cause, or stopped (moved, cancelled).</summary>
public sealed record MemberOutcome(JobResult? Result, JobFailure? Failure, string? StopReason)
{
    public static MemberOutcome Succeeded(JobResult r) => new(r, null, null);
    public static MemberOutcome Failed(JobFailure failure) => new(null, failure, null);
    public static MemberOutcome Stopped(string reason) => new(null, null, reason);
}
