using Microsoft.Extensions.Options;
using Orchestrator.Core.Fusion;
using Orchestrator.Core.Scheduling;
using Orchestrator.Core.Specs;

namespace Orchestrator.Grains;

/// <summary>
/// One job: it persists the job's state and drives its life-cycle rules (<see cref="JobLifecycle"/>), fences every
/// worker call by assignment epoch, and records what happened as typed events. A data-parallel job's rendezvous is
/// in JobGrain.Gang.cs.
/// </summary>
public sealed partial class JobGrain(
    [PersistentState("job", StorageNames.State)] IPersistentState<JobGrainState> store,
    [PersistentState("checkpoint", StorageNames.Checkpoints)] IPersistentState<CheckpointState> checkpoint,
    IClusterMembershipService membership,
    IOptions<OrchestratorOptions> options,
    ILogger<JobGrain> logger) : Grain, IJobGrain
{
    static readonly TimeSpan ProgressWriteInterval = TimeSpan.FromSeconds(3);
    JobDefinition D => store.State.Definition;
    JobRun R => store.State.Run;
    JobTimeline T => store.State.Timeline;
    string JobId => this.GetPrimaryKeyString();
    bool Exists => store.RecordExists;
    bool IsDataParallel => D.IsDataParallel;
    DateTime _lastProgressWrite;

    string Silo => GrainContext.Address.SiloAddress!.ToParsableString();

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        if (!Exists || R.State.IsTerminal() || R.LiveOn == Silo) return;
        if (R.LiveOn is { } previous && PreviousSiloLeft(previous))
        {
            AddEvent(JobEvent.RecoveredFromStorage(Silo, previous, R.State, R.Progress?.Step ?? 0, R.CheckpointStep));
            logger.JobRecoveredFromStorage(JobId, previous);
        }
        R.LiveOn = Silo;
        await store.WriteStateAsync(ct);
    }

    bool PreviousSiloLeft(string previous) =>
        membership.CurrentSnapshot.GetSiloStatus(SiloAddress.FromParsableString(previous)) is SiloStatus.Dead or SiloStatus.None;

    const int MaxSubmitterLength = 128;

    public async Task<JobInfo> Submit(JobSubmission submission)
    {
        ArgumentNullException.ThrowIfNull(submission);
        if (submission.SubmittedBy is not { Length: > 0 and <= MaxSubmitterLength })
            throw new ArgumentException($"submittedBy: a submitter name of 1 to {MaxSubmitterLength} characters is required", nameof(submission));
        if (Exists)
        {
            if (D.SpecJson == submission.SpecJson && D.SubmissionId == submission.SubmissionId) return Info();
            throw new JobIdTakenException($"job id '{JobId}' already exists (another submission or another spec); submit under another id");
        }
        JobSpec spec;
        try { spec = JobSpecJson.Read(submission.SpecJson, new SpecValidationOptions { CheckFiles = false }); }
        catch (SpecValidationException e) { throw new ArgumentException($"invalid job spec:{Environment.NewLine}{e.Message}"); }

        var liveSilos = membership.CurrentSnapshot.Members.Values.Count(m => m.Status == SiloStatus.Active);
        var devices = spec.DataParallel?.MinWorkers ?? spec.Resources.Devices;
        var memory = FusionPlanning.EstimateMemberBytes(spec);
        var shards = spec.Embedding is null ? null : EmbeddingSharding.Plan(JobId, spec, liveSilos);
        // Admission: a job the cluster could never run is refused now, with the numbers, instead of waiting in silence.
        var shape = (await Scheduler.GetShape()).Shape;
        var refusal = Admission.CheckAtSubmission(new PendingJob(JobId, spec.Priority, 0, devices, null, memory, Gang: spec.DataParallel is not null), shape)
            ?? (shards is null ? null : Admission.CheckEmbedding(shards.MemoryBytes, liveSilos, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes, Silo));
        if (refusal is not null) throw new ArgumentException($"the cluster cannot run job {spec.Name}: it {refusal.Message}");
        store.State.Definition = new JobDefinition
        {
            SpecJson = submission.SpecJson,
            SubmissionId = submission.SubmissionId,
            Name = spec.Name,
            Owner = spec.Owner,
            Priority = spec.Priority,
            Model = ModelSummary(spec.Model),
            SubmittedAt = DateTime.UtcNow,
            Devices = devices,
            MinRanks = spec.DataParallel?.MinWorkers ?? 0,
            MaxRanks = spec.DataParallel?.MaxWorkers ?? 0,
            FusionKey = FusionPlanning.Key(spec),
            MemoryBytes = memory,
            Shards = shards,
            Sequence = await GrainFactory.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).Add(JobId),
        };
        if (IsDataParallel) store.State.Gang = new GangRecord();
        R.State = JobState.Pending;
        R.LiveOn = Silo;
        Mark(RunPhase.Queued);
        var dp = spec.DataParallel;
        AddEvent(JobEvent.Submitted(submission.SubmittedBy, new JobSummary(D.Model, spec.Train.Optimizer.ToString().ToLowerInvariant(), spec.Train.Lr, spec.Priority,
            dp?.MinWorkers, dp?.MaxWorkers, dp?.Gradients.ToString().ToLowerInvariant())));
        if (shards is not null) AddEvent(JobEvent.EmbeddingPlanned(shards, liveSilos));
        await SaveAndPublish();
        if (!submission.DeferEnqueue) await Scheduler.Enqueue(Queued());
        return Info();
    }

    static string ModelSummary(ModelSpec m) => m.Type switch
    {
        ModelType.Mlp => $"mlp {string.Join("-", m.Hidden)}",
        ModelType.Cnn => $"cnn {string.Join("-", m.Channels)} fc{m.FcHidden}",
        _ => $"dlrm dim {m.Dim} {string.Join("-", m.Hidden)}|{string.Join("-", m.Top ?? [])}",
    };

    public Task<JobHistory> GetHistory()
    {
        EnsureExists();
        return Task.FromResult(new JobHistory(T.Marks.ToList(), T.Curve.ToList()));
    }

    public Task<JobInfo> GetInfo()
    {
        EnsureExists();
        return Task.FromResult(Info());
    }

    public async Task Note(JobEvent happened)
    {
        if (!Exists) return;
        AddEvent(happened);
        await SaveAndPublish();
    }

    public Task<QueuedJob?> GetQueueEntry() => Task.FromResult(Exists && R.State.IsQueued() ? Queued() : null);

    public Task<IReadOnlyList<JobEvent>> GetEvents()
    {
        EnsureExists();
        return Task.FromResult<IReadOnlyList<JobEvent>>(T.Events.ToList());
    }

    public async Task<JobInfo> Cancel(string who)
    {
        EnsureExists();
        if (R.State.IsTerminal()) return Info();
        if (R.State.IsQueued()) await Scheduler.Withdraw(JobId);
        await ReleaseNode();
        End(JobTrigger.Cancelled);
        AddEvent(JobEvent.Cancelled(who));
        await SaveAndPublish();
        return Info();
    }

    public async Task Delete()
    {
        EnsureExists();
        if (!R.State.IsTerminal()) throw new InvalidOperationException($"job {JobId} is {R.State.ToString().ToLowerInvariant()}: cancel it first (orch cancel {JobId})");
        await GrainFactory.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).Remove(JobId);
        await checkpoint.ClearStateAsync();
        await store.ClearStateAsync();
        DeactivateOnIdle();
    }

    public async Task<bool> MarkScheduled(Assignment a)
    {
        // Only a waiting job can be placed: a second placement (a duplicate scheduler activation, a retried
        // pass) is refused, so one job never runs in two places.
        if (!Exists || IsDataParallel || JobLifecycle.Next(R.State, JobTrigger.Placed, R.Recoveries > 0) is not { } next
            || a.AssignmentEpoch <= R.HighestAssignmentEpoch) return false;
        R.HighestAssignmentEpoch = a.AssignmentEpoch;
        R.Assignment = a;
        R.State = next;
        R.Unschedulable = null;
        Mark(RunPhase.Starting);
        AddEvent(JobEvent.Placed(a, R.CheckpointStep));
        await SaveAndPublish();
        return true;
    }

    public async Task MarkUnschedulable(Unschedulable why)
    {
        ArgumentNullException.ThrowIfNull(why);
        if (!Exists || R.Unschedulable == why) return;
        if (R.State != JobState.Unschedulable)
        {
            if (JobLifecycle.Next(R.State, JobTrigger.FoundUnschedulable, R.Recoveries > 0) is not { } next) return;
            R.State = next;
        }
        R.Unschedulable = why;
        AddEvent(JobEvent.FoundUnschedulable(why));
        await SaveAndPublish();
    }

    public async Task MarkSchedulable()
    {
        if (!Exists || JobLifecycle.Next(R.State, JobTrigger.FoundSchedulable, R.Recoveries > 0) is not { } next) return;
        R.State = next;
        R.Unschedulable = null;
        AddEvent(JobEvent.FoundSchedulable());
        await SaveAndPublish();
    }

    public async Task<QueuedJob?> Unschedule(long assignmentEpoch)
    {
        if (!IsCurrent(assignmentEpoch)) return null;
        if (IsDataParallel) return await RemoveRank(assignmentEpoch, RankRemoval.PlacementNotTaken, JobEvent.SchedulerSource, FailureCategory.WorkerCrash);
        if (JobLifecycle.Next(R.State, JobTrigger.PlacementNotTaken, R.Recoveries > 0) is not { } next) return null;
        var a = R.Assignment!;
        R.Assignment = null;
        R.State = next;
        Mark(RunPhase.Queued);
        AddEvent(JobEvent.PlacementNotTaken(a.NodeId, a.Device));
        await SaveAndPublish();
        return Queued();
    }

    public async Task<QueuedJob?> MarkLost(long assignmentEpoch, TimeSpan timeout)
    {
        if (!IsCurrent(assignmentEpoch) || R.State.IsTerminal()) return null;
        if (IsDataParallel) return await RemoveRank(assignmentEpoch, RankRemoval.NodeLost, JobEvent.SchedulerSource, FailureCategory.NodeLost, silentSeconds: timeout.TotalSeconds);
        var node = R.Assignment!.NodeId;
        R.Assignment = null;
        R.State = JobLifecycle.Apply(R.State, JobTrigger.Lost, R.Recoveries > 0);
        R.Recoveries++;
        T.Interrupted(RunPhase.Queued, FailureCategory.NodeLost, R.Progress);
        AddEvent(JobEvent.NodeLost(node, timeout, R.CheckpointStep));
        await SaveAndPublish();
        return Queued();
    }

    public async Task<StartReply> Start(long assignmentEpoch, string nodeId)
    {
        if (Refused(assignmentEpoch) is { } why) return StartReply.Refuse(why);
        if (IsDataParallel) return StartReply.Refuse(new Refusal(StopCause.WrongKind, "a rank of a data-parallel job starts with JoinGang"));
        if (R.State == JobState.Scheduled)
        {
            R.State = JobLifecycle.Apply(R.State, JobTrigger.Started, R.Recoveries > 0);
            R.StartedAt ??= DateTime.UtcNow;
            var from = checkpoint.State.Newest?.Step ?? 0;
            Mark(RunPhase.Training, from);
            AddEvent(JobEvent.Started(nodeId, from));
            await SaveAndPublish();
        }
        return new StartReply(null, D.SpecJson, checkpoint.State.Kept.ToList(), Shards: D.Shards);
    }

    public async Task<WorkAck> ReportProgress(long assignmentEpoch, JobProgress progress)
    {
        if (Refused(assignmentEpoch) is { } why) return new WorkAck(why);
        if (R.PreemptedFor is { } gang) return new WorkAck(new Refusal(StopCause.Preempted, $"preempted for data-parallel job {gang}"), Yield: true);
        var epochEnded = progress.TestAccuracy is not null && progress.TrainingEpoch != R.Progress?.TrainingEpoch;
        if (R.Progress is { } previous && progress.Step > previous.Step && progress.At > previous.At)
            OrchestratorMetrics.StepTime.Observe((progress.At - previous.At).TotalSeconds / (progress.Step - previous.Step));
        R.Progress = progress;
        T.AddCurvePoint(progress, options.Value.MaxCurvePoints);
        if (epochEnded) AddEvent(JobEvent.TrainingEpochCompleted(Reporter(assignmentEpoch), progress));
        // Written at every report (about one a second): a reader after a failover never sees the step go back.
        await SaveAndPublish();
        return WorkAck.Go;
    }

    public async Task<WorkAck> SaveCheckpoint(long assignmentEpoch, CheckpointRef cp)
    {
        if (Refused(assignmentEpoch) is { } why) return new WorkAck(why);
        if (await KeepCheckpoint(cp)) await SaveAndPublish();
        return WorkAck.Go;
    }

    /// <summary>Keeps a checkpoint newer than the newest kept (and the newest few before it); false when it is not newer.</summary>
    async Task<bool> KeepCheckpoint(CheckpointRef cp)
    {
        ArgumentNullException.ThrowIfNull(cp);
        if (cp.Step <= (R.CheckpointStep ?? -1)) return false;
        // A reference names a checkpoint of this job only: a worker (or anyone holding an assignment epoch) cannot point
        // the job at another job's state.
        if (cp.Bytes < 0 || cp.Key is not { Length: <= 512 } key || !key.StartsWith(JobId + "/", StringComparison.Ordinal) || cp.Sha256 is not { Length: 64 })
            throw new ArgumentException($"checkpoint: key '{cp.Key}', {cp.Bytes} bytes, hash '{cp.Sha256}' is not a reference to a checkpoint of job {JobId}");
        checkpoint.State.Kept.Insert(0, cp);
        if (checkpoint.State.Kept.Count > options.Value.CheckpointsKept) checkpoint.State.Kept.RemoveRange(options.Value.CheckpointsKept, checkpoint.State.Kept.Count - options.Value.CheckpointsKept);
        await checkpoint.WriteStateAsync();
        R.CheckpointStep = cp.Step;
        return true;
    }

    public Task<CheckpointHolding> GetCheckpoints() =>
        Task.FromResult(new CheckpointHolding(Exists, R.State, R.EndedAt, checkpoint.State.Kept.ToList()));

    public async Task Preempt(string forJob)
    {
        if (!Exists || IsDataParallel || R.State is not (JobState.Scheduled or JobState.Running) || R.PreemptedFor is not null) return;
        R.PreemptedFor = forJob;
        AddEvent(JobEvent.PreemptionRequested(forJob));
        await SaveAndPublish();
    }

    public async Task<WorkAck> Yield(long assignmentEpoch, CheckpointRef? cp)
    {
        if (Refused(assignmentEpoch) is { } why) return new WorkAck(why);
        if (cp is not null) await KeepCheckpoint(cp);
        var step = checkpoint.State.Newest?.Step ?? 0;
        var node = Reporter(assignmentEpoch);
        await ReleaseNode();
        R.Assignment = null;
        R.PreemptedFor = null;
        R.State = JobLifecycle.Apply(R.State, JobTrigger.Yielded, R.Recoveries > 0);
        Mark(RunPhase.Queued, step);
        T.Interruption = FailureCategory.Preemption;
        AddEvent(JobEvent.Preempted(node, step));
        await SaveAndPublish();
        IncidentLogGrain.Report(GrainFactory, Incident.Preempted(node, JobId, step), logger);
        await Scheduler.Enqueue(Queued());
        return new WorkAck(new Refusal(StopCause.Preempted, "preempted"));
    }

    public async Task<WorkAck> Complete(long assignmentEpoch, JobResult result)
    {
        if (Refused(assignmentEpoch) is { } why) return new WorkAck(why);
        var node = Reporter(assignmentEpoch);
        await ReleaseNode();
        R.Result = result;
        End(JobTrigger.Succeeded, result.Steps);
        AddEvent(JobEvent.Succeeded(node, result));
        await SaveAndPublish();
        return WorkAck.Go;
    }

    public async Task<WorkAck> Fail(long assignmentEpoch, JobFailure failure)
    {
        if (Refused(assignmentEpoch) is { } why) return new WorkAck(why);
        ArgumentNullException.ThrowIfNull(failure);
        var node = Reporter(assignmentEpoch);
        await ReleaseNode();
        // A worker's words are kept, but not without bound (the job's state and its incident hold them).
        R.Failure = failure = failure.Detail is { Length: > Incident.MaxDetailChars } words ? failure with { Detail = words[..Incident.MaxDetailChars] + "…" } : failure;
        End(JobTrigger.Failed);
        AddEvent(JobEvent.Failed(node, failure));
        await SaveAndPublish();
        IncidentLogGrain.Report(GrainFactory, Incident.JobFailed(node, JobId, failure), logger);
        return WorkAck.Go;
    }

    void End(JobTrigger trigger, long? step = null)
    {
        R.State = JobLifecycle.Apply(R.State, trigger, R.Recoveries > 0);
        R.EndedAt = DateTime.UtcNow;
        Mark(RunPhase.Ended, step);
    }

    bool IsCurrent(long assignmentEpoch) => Exists && (IsDataParallel
        ? store.State.Ranks.Any(r => r.AssignmentEpoch == assignmentEpoch)
        : R.Assignment is { } a && a.AssignmentEpoch == assignmentEpoch);

    /// <summary>Who speaks for the job in events: its node, or for a data-parallel job the rank's node.</summary>
    string Reporter(long assignmentEpoch) => (store.State.Ranks.FirstOrDefault(r => r.AssignmentEpoch == assignmentEpoch) ?? R.Assignment)?.NodeId ?? "worker";

    /// <summary>Fencing: only the holder of the current assignment may act for the job.</summary>
    Refusal? Refused(long assignmentEpoch) =>
        JobLifecycle.Refusal(Exists, R.State, IsCurrent(assignmentEpoch), IsDataParallel) switch
        {
            null => null,
            StopCause.NoSuchJob => new(StopCause.NoSuchJob, $"job {JobId} does not exist"),
            StopCause.Cancelled => new(StopCause.Cancelled, "the job was cancelled"),
            StopCause.Ended => new(StopCause.Ended, $"the job already ended ({R.State})"),
            StopCause.NotARank => new(StopCause.NotARank, $"assignment epoch {assignmentEpoch} is no longer a rank of the job (removed, or the job was placed again)"),
            var cause => new(cause.Value, R.Assignment is { } a
                ? $"assignment epoch {assignmentEpoch} is stale: the job now runs on {a.NodeId} with assignment epoch {a.AssignmentEpoch}"
                : $"assignment epoch {assignmentEpoch} is stale: the job is {R.State}"),
        };

    async Task ReleaseNode()
    {
        var held = store.State.Ranks.Concat(R.Assignment is { } a && !IsDataParallel ? [a] : []).ToList();
        if (held.Count == 0) return;
        foreach (var r in held) await GrainFactory.GetGrain<INodeGrain>(r.NodeId).Unassign(JobId, r.AssignmentEpoch);
        store.State.Ranks.Clear();
        await Scheduler.Kick();
    }

    void EnsureExists()
    {
        if (!Exists) throw new KeyNotFoundException($"no job '{JobId}'; list jobs with 'orch jobs'");
    }

    void AddEvent(JobEvent happened) => T.Add(happened, options.Value.MaxEventsPerJob);

    /// <summary>Starts a phase now; <paramref name="step"/>: the step training resumes from, else the step reached.</summary>
    void Mark(RunPhase phase, long? step = null) => T.Mark(phase, step ?? R.Progress?.Step ?? 0);

    ISchedulerGrain Scheduler => GrainFactory.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster);

    QueuedJob Queued() => IsDataParallel
        ? new(JobId, D.Priority, D.Sequence, D.MinRanks, null, D.MemoryBytes, Gang: true, MaxDevices: D.MaxRanks)
        : new(JobId, D.Priority, D.Sequence, D.Devices, D.FusionKey, D.MemoryBytes);

    JobInfo Info() => new(JobId, D.Name, D.Owner, R.State, D.Priority, D.Model, D.SubmittedAt, R.StartedAt, R.EndedAt,
        R.Assignment, R.Progress, R.Result, R.Failure, R.CheckpointStep, R.Recoveries, Silo, IsDataParallel ? View(null) : null,
        IsDataParallel ? store.State.Ranks.ToList() : null, D.Shards, JobTime.From(T.Account(R.Progress?.Step ?? 0)), R.Unschedulable);

    async Task SaveAndPublish()
    {
        await store.WriteStateAsync();
        _lastProgressWrite = DateTime.UtcNow;
        await GrainFactory.GetGrain<IJobIndexGrain>(SchedulerKeys.Cluster).Update(Info());
    }
}
