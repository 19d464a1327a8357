using Orchestrator.Core.Reliability;

namespace Orchestrator.Contracts;

/// <summary>What happened to a job. Each kind fills its own fields of <see cref="JobEvent"/> (see its factories).</summary>
public enum JobEventKind
{
    Submitted,
    EmbeddingPlanned,
    Placed,
    PlacementNotTaken,
    NodeLost,
    Started,
    TrainingEpochCompleted,
    Succeeded,
    Failed,
    Cancelled,
    PreemptionRequested,
    Preempted,
    RecoveredFromStorage,
    GangPlaced,
    GangGrowing,
    GangFormed,
    RankUp,
    RankRestarted,
    RankJoinedAtOnce,
    RanksJoined,
    RankRemoved,
    MembershipReFormed,
    GangPaused,
    GangRequeued,
    TrainingResumed,
    ShardRebuilt,
    ParityRebuilt,
    ShardMoved,
    RolledBack,
    NonFiniteStepSkipped,
    MalformedDataSkipped,
    Unschedulable,
    Schedulable,
}

/// <summary>Why a data-parallel job lost a rank.</summary>
public enum RankRemoval
{
    /// <summary>Its peers reported it and its process turned out gone (or stuck).</summary>
    FoundDead,
    /// <summary>Its node could not take the placement.</summary>
    PlacementNotTaken,
    /// <summary>Its node stopped heartbeating.</summary>
    NodeLost,
}

/// <summary>Why a data-parallel job stood still while its gang changed.</summary>
public enum GangPause { RanksJoined, PeerLost, BelowMinimum }

/// <summary>
/// One thing that happened to a job: its <see cref="Kind"/>, who reported it (<see cref="Source"/>: a user, the
/// scheduler, the job grain, a node, a shard) and the fields of that kind. <see cref="Message"/> is rendered from the
/// fields for people; programs read the kind and the fields. <see cref="Detail"/> carries words from elsewhere (an
/// exception's or a peer's message), shown as they are and never read by a program.
/// </summary>
[GenerateSerializer, Immutable, Alias("job-event")]
public sealed record JobEvent
{
    [Id(0)] public DateTime At { get; init; }
    [Id(1)] public JobEventKind Kind { get; init; }
    [Id(2)] public string Source { get; init; } = "";
    /// <summary>The step the event happened at (or, for a rollback, the step it rolled back from).</summary>
    [Id(3)] public long? Step { get; init; }
    /// <summary>The step training resumes from: a checkpoint's, or 0 for a fresh start.</summary>
    [Id(4)] public long? ResumeStep { get; init; }
    [Id(5)] public string? Node { get; init; }
    [Id(6)] public string? Device { get; init; }
    [Id(7)] public long? AssignmentEpoch { get; init; }
    [Id(8)] public long? MembershipEpoch { get; init; }
    /// <summary>A rank's index in its membership.</summary>
    [Id(9)] public int? Rank { get; init; }
    /// <summary>How many ranks the membership has after the event.</summary>
    [Id(10)] public int? Ranks { get; init; }
    /// <summary>node/device of each rank placed or joined.</summary>
    [Id(11)] public IReadOnlyList<string>? Devices { get; init; }
    /// <summary>Ranks (indexes) named by the event, e.g. those that sent non-finite gradients.</summary>
    [Id(12)] public IReadOnlyList<int>? RankList { get; init; }
    [Id(13)] public int? Count { get; init; }
    [Id(14)] public string? ArrayId { get; init; }
    [Id(15)] public int? ArrayWidth { get; init; }
    [Id(16)] public string? Silo { get; init; }
    [Id(17)] public string? PreviousSilo { get; init; }
    /// <summary>An embedding shard, as group/member.</summary>
    [Id(18)] public string? Shard { get; init; }
    [Id(19)] public long? Bytes { get; init; }
    /// <summary>A duration: a rebuild, a rollback, a pause, a silence, a heartbeat timeout.</summary>
    [Id(20)] public double? Seconds { get; init; }
    [Id(21)] public int? TrainingEpoch { get; init; }
    [Id(22)] public double? Accuracy { get; init; }
    [Id(23)] public double? Loss { get; init; }
    [Id(24)] public JobResult? Result { get; init; }
    [Id(25)] public JobFailure? Failure { get; init; }
    [Id(26)] public PeerFailure? Peer { get; init; }
    [Id(27)] public RankRemoval? Removal { get; init; }
    [Id(28)] public GangPause? Pause { get; init; }
    /// <summary>Another job the event names (the gang a job was preempted for).</summary>
    [Id(29)] public string? OtherJob { get; init; }
    [Id(30)] public JobState? State { get; init; }
    [Id(31)] public JobSummary? Summary { get; init; }
    [Id(32)] public ShardConfig? Embedding { get; init; }
    [Id(33)] public int? LiveSilos { get; init; }
    [Id(34)] public string? Path { get; init; }
    [Id(35)] public int? MinRanks { get; init; }
    [Id(36)] public string? Detail { get; init; }
    [Id(37)] public Unschedulable? Unschedulable { get; init; }

    /// <summary>The event in words, rendered from its fields.</summary>
    public string Message => JobEventText.Render(this);

    static JobEvent Of(JobEventKind kind, string source) => new() { At = DateTime.UtcNow, Kind = kind, Source = source };

    public static JobEvent Submitted(string by, JobSummary summary) => Of(JobEventKind.Submitted, by) with { Summary = summary };

    public static JobEvent EmbeddingPlanned(ShardConfig config, int liveSilos) =>
        Of(JobEventKind.EmbeddingPlanned, JobGrainSource) with { Embedding = config, LiveSilos = liveSilos };

    public static JobEvent Placed(Assignment a, long? resumeStep) => Of(JobEventKind.Placed, SchedulerSource) with
    {
        Node = a.NodeId, Device = a.Device, ArrayId = a.ArrayId, ArrayWidth = a.ArrayWidth, AssignmentEpoch = a.AssignmentEpoch, ResumeStep = resumeStep,
    };

    public static JobEvent PlacementNotTaken(string node, string device) => Of(JobEventKind.PlacementNotTaken, SchedulerSource) with { Node = node, Device = device };

    public static JobEvent NodeLost(string node, TimeSpan timeout, long? resumeStep) =>
        Of(JobEventKind.NodeLost, SchedulerSource) with { Node = node, Seconds = timeout.TotalSeconds, ResumeStep = resumeStep };

    public static JobEvent Started(string node, long resumeStep) => Of(JobEventKind.Started, node) with { Node = node, ResumeStep = resumeStep };

    public static JobEvent TrainingEpochCompleted(string node, JobProgress p) => Of(JobEventKind.TrainingEpochCompleted, node) with
    {
        TrainingEpoch = p.TrainingEpoch, Step = p.Step, Accuracy = p.TestAccuracy, Loss = p.Loss,
    };

    public static JobEvent Succeeded(string node, JobResult result) => Of(JobEventKind.Succeeded, node) with { Result = result, Step = result.Steps };

    public static JobEvent Failed(string node, JobFailure failure) => Of(JobEventKind.Failed, node) with { Failure = failure, Step = failure.Step };

    public static JobEvent Cancelled(string by) => Of(JobEventKind.Cancelled, by);

    public static JobEvent FoundUnschedulable(Unschedulable why) => Of(JobEventKind.Unschedulable, SchedulerSource) with { Unschedulable = why };

    public static JobEvent FoundSchedulable() => Of(JobEventKind.Schedulable, SchedulerSource);

    public static JobEvent PreemptionRequested(string forJob) => Of(JobEventKind.PreemptionRequested, SchedulerSource) with { OtherJob = forJob };

    public static JobEvent Preempted(string node, long step) => Of(JobEventKind.Preempted, node) with { Step = step, ResumeStep = step };

    public static JobEvent RecoveredFromStorage(string silo, string previousSilo, JobState state, long step, long? checkpointStep) =>
        Of(JobEventKind.RecoveredFromStorage, JobGrainSource) with { Silo = silo, PreviousSilo = previousSilo, State = state, Step = step, ResumeStep = checkpointStep };

    public static JobEvent GangPlaced(IReadOnlyList<Assignment> ranks, long? resumeStep) =>
        Of(JobEventKind.GangPlaced, SchedulerSource) with { Ranks = ranks.Count, Devices = Where(ranks), ResumeStep = resumeStep };

    public static JobEvent GangGrowing(IReadOnlyList<Assignment> ranks) =>
        Of(JobEventKind.GangGrowing, SchedulerSource) with { Count = ranks.Count, Devices = Where(ranks) };

    public static JobEvent GangFormed(int ranks, long membershipEpoch, long resumeStep) =>
        Of(JobEventKind.GangFormed, JobGrainSource) with { Ranks = ranks, MembershipEpoch = membershipEpoch, ResumeStep = resumeStep };

    public static JobEvent RankUp(string node) => Of(JobEventKind.RankUp, node) with { Node = node };

    public static JobEvent RankRestarted(string node) => Of(JobEventKind.RankRestarted, node) with { Node = node };

    public static JobEvent RankJoinedAtOnce(string node, int ranks, long membershipEpoch) =>
        Of(JobEventKind.RankJoinedAtOnce, node) with { Node = node, Ranks = ranks, MembershipEpoch = membershipEpoch };

    public static JobEvent RanksJoined(IReadOnlyList<Assignment> joined, long step, int ranks, long membershipEpoch) => Of(JobEventKind.RanksJoined, JobGrainSource) with
    {
        Count = joined.Count, Devices = Where(joined), Step = step, Ranks = ranks, MembershipEpoch = membershipEpoch,
    };

    /// <param name="silentSeconds">For <see cref="RankRemoval.FoundDead"/>: how long its node had been silent (null: never heard from);
    /// for <see cref="RankRemoval.NodeLost"/>: the heartbeat timeout.</param>
    public static JobEvent RankRemoved(string source, RankRemoval removal, Assignment rank, int? rankIndex, long? step, double? silentSeconds, string? detail) =>
        Of(JobEventKind.RankRemoved, source) with
        {
            Removal = removal, Node = rank.NodeId, Device = rank.Device, AssignmentEpoch = rank.AssignmentEpoch, Rank = rankIndex, Step = step,
            Seconds = silentSeconds, Detail = detail,
        };

    public static JobEvent MembershipReFormed(string source, long step, long membershipEpoch, int ranks, int suspectRank, Assignment suspect, PeerFailure peer, string detail) =>
        Of(JobEventKind.MembershipReFormed, source) with
        {
            Step = step, MembershipEpoch = membershipEpoch, Ranks = ranks, Rank = suspectRank, Node = suspect.NodeId, Device = suspect.Device, Peer = peer, Detail = detail,
        };

    public static JobEvent GangPaused(int ranks, int minRanks) => Of(JobEventKind.GangPaused, JobGrainSource) with { Ranks = ranks, MinRanks = minRanks };

    public static JobEvent GangRequeued(long? resumeStep) => Of(JobEventKind.GangRequeued, JobGrainSource) with { ResumeStep = resumeStep };

    public static JobEvent TrainingResumed(long step, int ranks, TimeSpan paused, GangPause why) =>
        Of(JobEventKind.TrainingResumed, JobGrainSource) with { Step = step, Ranks = ranks, Seconds = paused.TotalSeconds, Pause = why };

    public static JobEvent ShardRebuilt(string shardKey, string shard, string silo, long step, TimeSpan took, long bytes) =>
        Of(JobEventKind.ShardRebuilt, $"shard {shardKey}") with { Shard = shard, Silo = silo, Step = step, Seconds = took.TotalSeconds, Bytes = bytes };

    public static JobEvent ParityRebuilt(string shardKey, string shard, string silo, TimeSpan took, long bytes) =>
        Of(JobEventKind.ParityRebuilt, $"shard {shardKey}") with { Shard = shard, Silo = silo, Seconds = took.TotalSeconds, Bytes = bytes };

    public static JobEvent ShardMoved(string shard, string from, string to) =>
        Of(JobEventKind.ShardMoved, "shard protection") with { Shard = shard, PreviousSilo = from, Silo = to };

    public static JobEvent RolledBack(string node, long from, long to, TimeSpan took, string detail) =>
        Of(JobEventKind.RolledBack, node) with { Step = from, ResumeStep = to, Seconds = took.TotalSeconds, Detail = detail };

    public static JobEvent NonFiniteStepSkipped(string node, long step, IReadOnlyList<int> ranks) =>
        Of(JobEventKind.NonFiniteStepSkipped, node) with { Step = step, RankList = ranks };

    public static JobEvent MalformedDataSkipped(string node, string path, int lines, string? first) =>
        Of(JobEventKind.MalformedDataSkipped, node) with { Path = path, Count = lines, Detail = first };

    public const string SchedulerSource = "scheduler", JobGrainSource = "job grain";

    static IReadOnlyList<string> Where(IEnumerable<Assignment> ranks) => ranks.Select(r => $"{r.NodeId}/{r.Device}").ToList();
}

/// <summary>What a job was submitted as, for its first event.</summary>
[GenerateSerializer, Immutable, Alias("job-summary")]
public sealed record JobSummary(string Model, string Optimizer, double Lr, int Priority, int? MinRanks = null, int? MaxRanks = null, string? Combine = null);
