using Orchestrator.Core.Collectives;
using Orchestrator.Core.Reliability;

namespace Orchestrator.Grains;

/// <summary>The membership of a data-parallel job, persisted with the job (see <see cref="ElasticMembership"/>).</summary>
[GenerateSerializer, Alias("gang-record")]
public sealed class GangRecord
{
    [Id(0)] public long Epoch { get; set; }
    [Id(1)] public List<GangSeat> Ranks { get; set; } = [];
    /// <summary>Ranks whose endpoint is up and who wait to join (or, before the gang forms, to form it).</summary>
    [Id(2)] public List<GangSeat> Waiting { get; set; } = [];
    [Id(3)] public long Step { get; set; }
    [Id(4)] public bool Formed { get; set; }
}

/// <summary>A rank in the membership: its assignment epoch and its data-plane endpoint.</summary>
[GenerateSerializer, Immutable, Alias("gang-seat")]
public sealed record GangSeat(long Rank, string Endpoint);

/// <summary>
/// The job grain as the rendezvous of a data-parallel job: it collects the ranks' endpoints, forms the gang,
/// admits joiners at step boundaries, and turns a rank's report of a lost peer into a verdict (remove the peer,
/// re-form, or wait), following the pure rules of <see cref="ElasticMembership"/> and <see cref="FailureJudge"/>.
/// </summary>
public sealed partial class JobGrain
{
    static readonly TimeSpan GrowthRequestPeriod = TimeSpan.FromSeconds(5);

    // Not persisted: after a failover the reports simply start over.
    readonly Dictionary<long, DateTime> _suspects = [];
    long _suspectsEpoch;
    int _reFormsWithoutProgress;
    (DateTime Since, string Cause)? _pause;
    DateTime _lastGrowthRequest;

    bool IsDataParallel => S.MaxRanks > 0;
    GangRecord G => S.Gang!;

    public async Task<bool> MarkGangScheduled(IReadOnlyList<Assignment> ranks)
    {
        if (!store.RecordExists || !IsDataParallel || ranks.Count == 0 || ranks.Any(a => a.Epoch <= S.HighestEpoch)) return false;
        if (S.State.IsQueued() && ranks.Count >= S.MinRanks && ranks.Count <= S.MaxRanks)
        {
            S.Ranks = ranks.ToList();
            // A new gang: a fresh membership in a newer epoch, resuming where the checkpoint is.
            S.Gang = new GangRecord { Epoch = G.Epoch + 1, Step = S.CheckpointStep ?? 0 };
            S.Assignment = ranks[0];
            S.State = JobState.Scheduled;
            Mark(RunPhase.Starting);
            AddEvent("scheduler", $"gang of {ranks.Count} placed: {Describe(ranks)}; it forms when every rank is up{ResumeNote()}");
        }
        else if (S.State == JobState.Running && G.Formed && S.Ranks.Count + ranks.Count <= S.MaxRanks)
        {
            S.Ranks.AddRange(ranks);
            AddEvent("scheduler", $"growing: {ranks.Count} more rank(s) placed ({Describe(ranks)}); they join at the next step boundary");
        }
        else return false;
        S.HighestEpoch = ranks.Max(a => a.Epoch);
        await SaveAndPublish();
        return true;
    }

    public async Task<StartReply> JoinGang(long epoch, string nodeId, string endpoint)
    {
        if (Refusal(epoch) is { } why) return new StartReply(false, why.Reason, "", null);
        if (!IsDataParallel) return new StartReply(false, "not a data-parallel job", "", null);
        var seat = new GangSeat(epoch, endpoint);
        if (!G.Formed)
        {
            G.Waiting.RemoveAll(w => w.Rank == epoch);
            G.Waiting.Add(seat);
            TryForm();
        }
        else if (G.Ranks.FirstOrDefault(r => r.Rank == epoch) is { } member)
        {
            // The same assignment with a new endpoint: its worker restarted, so the old process is gone.
            if (member.Endpoint != endpoint)
            {
                Apply(Rules(), m => m.Remove(Id(epoch)));
                AddEvent(nodeId, $"rank on {nodeId} came back with a new endpoint; it rejoins at the next step boundary");
                Join(seat, nodeId);
            }
        }
        else if (G.Waiting.All(w => w.Rank != epoch)) Join(seat, nodeId);
        await SaveAndPublish();
        return new StartReply(true, null, S.SpecJson, checkpoint.State.Checkpoint, View(epoch), S.Shards);
    }

    public async Task<GangView> SyncGang(long epoch, long completedSteps)
    {
        if (Refusal(epoch) is { } why) return StopView(why.Reason!);
        if (G.Formed && completedSteps > G.Step)
        {
            var admitted = Apply(Rules(), m => m.CompleteStep(completedSteps));
            _reFormsWithoutProgress = 0;
            if (_pause is { } p)
            {
                Mark(RunPhase.Training, G.Step);
                AddEvent("job grain", $"training goes on at step {completedSteps} with {G.Ranks.Count} ranks after a {(DateTime.UtcNow - p.Since).TotalSeconds:F1} s pause ({p.Cause})");
                _pause = null;
            }
            if (admitted is not null)
            {
                AddEvent("job grain", $"{admitted.Joined.Count} rank(s) joined at step {completedSteps}: {Describe(admitted.Joined)}; now {G.Ranks.Count} ranks (membership epoch {G.Epoch}); parameters and optimizer state broadcast to them");
                _pause = (DateTime.UtcNow, "ranks joined");
                Mark(RunPhase.Paused);
                await SaveAndPublish();
            }
            else if (DateTime.UtcNow - _lastProgressWrite > ProgressWriteInterval) await SaveAndPublish();
        }
        RequestGrowth();
        return View(epoch);
    }

    public async Task<GangView> ReportPeerFailure(long epoch, long membershipEpoch, long suspect, long step, string detail)
    {
        if (Refusal(epoch) is { } why) return StopView(why.Reason!);
        if (!G.Formed || membershipEpoch != G.Epoch || suspect == epoch || G.Ranks.All(r => r.Rank != suspect)) return View(epoch);
        var now = DateTime.UtcNow;
        if (_suspectsEpoch != G.Epoch)
        {
            _suspects.Clear();
            _suspectsEpoch = G.Epoch;
        }
        if (!_suspects.TryGetValue(suspect, out var first)) _suspects[suspect] = first = now;
        if (_pause is null)
        {
            _pause = (now, "a rank lost contact with a peer");
            Interrupted(RunPhase.Paused, FailureTaxonomy.Classify(detail));
        }
        var rank = S.Ranks.First(r => r.Epoch == suspect);
        var node = await GrainFactory.GetGrain<INodeGrain>(rank.NodeId).GetInfo();
        var verdict = FailureJudge.Judge(now, first, node.LastHeartbeat, node.Health == NodeHealth.Dead, options.Value.RankSilenceLimit, _reFormsWithoutProgress);
        var who = $"rank {RankNumber(suspect)} ({rank.NodeId}/{rank.Device})";
        switch (verdict)
        {
            case SuspectVerdict.Remove:
                var silent = node.LastHeartbeat is { } hb ? $"its node silent for {(now - hb).TotalSeconds:F1} s" : "its node never heard from";
                await RemoveRank(suspect, Reporter(epoch), $"{who} removed at step {step}: {detail}; {silent}", foundDead: true);
                break;
            case SuspectVerdict.ReForm:
                Apply(Rules(), m => m.ReForm());
                _reFormsWithoutProgress++;
                AddEvent(Reporter(epoch), $"membership re-formed at step {step} (epoch {G.Epoch}, same {G.Ranks.Count} ranks): contact with {who} was lost ({detail}) but its process is alive");
                await SaveAndPublish();
                break;
            default:
                return View(epoch);
        }
        return View(epoch);
    }

    /// <summary>Removes a rank (dead, not taken by its node, or lost with its node); returns the queue entry when
    /// the whole job must be placed again (no rank left, or a gang that has not formed fell below its minimum).
    /// <paramref name="foundDead"/>: its peers found it dead (its node may turn out lost: the node's incident names this job).</summary>
    async Task<QueuedJob?> RemoveRank(long epoch, string who, string what, bool foundDead = false)
    {
        var rank = S.Ranks.First(r => r.Epoch == epoch);
        S.Ranks.Remove(rank);
        var node = GrainFactory.GetGrain<INodeGrain>(rank.NodeId);
        await (foundDead ? node.RankLost(JobId, rank.Epoch) : node.Unassign(JobId, rank.Epoch));
        if (G.Formed && G.Ranks.Any(r => r.Rank == epoch)) Apply(Rules(), m => m.Remove(Id(epoch)));
        G.Waiting.RemoveAll(w => w.Rank == epoch);
        var left = G.Formed ? G.Ranks.Count : S.Ranks.Count;
        AddEvent(who, $"{what}; {left} rank(s) left (membership epoch {G.Epoch})");
        QueuedJob? requeued = null;
        if (left == 0 || (!G.Formed && S.Ranks.Count < S.MinRanks))
        {
            foreach (var r in S.Ranks) await GrainFactory.GetGrain<INodeGrain>(r.NodeId).Unassign(JobId, r.Epoch);
            S.Ranks.Clear();
            S.Gang = new GangRecord { Epoch = G.Epoch + 1, Step = G.Step };
            S.Assignment = null;
            S.State = JobState.Recovering;
            S.Recoveries++;
            Interrupted(RunPhase.Queued, FailureTaxonomy.Classify(what));
            AddEvent("job grain", $"no gang left: requeued as a whole{ResumeNote()}");
            requeued = Queued();
        }
        else if (!G.Formed) TryForm();
        else if (G.Ranks.Count < S.MinRanks)
        {
            _pause ??= (DateTime.UtcNow, "below the minimum");
            Interrupted(RunPhase.Paused, FailureTaxonomy.Classify(what));
            AddEvent("job grain", $"paused: {G.Ranks.Count} rank(s), fewer than the minimum {S.MinRanks}; waiting for a device");
        }
        await SaveAndPublish();
        await GrainFactory.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).Kick();
        RequestGrowth();
        return requeued;
    }

    /// <summary>The gang forms once every placed rank has its endpoint up.</summary>
    void TryForm()
    {
        if (S.Ranks.Count < S.MinRanks || !S.Ranks.All(r => G.Waiting.Any(w => w.Rank == r.Epoch))) return;
        G.Ranks = S.Ranks.Select(r => G.Waiting.First(w => w.Rank == r.Epoch)).ToList();
        G.Waiting.Clear();
        G.Epoch++;
        G.Formed = true;
        S.State = JobState.Running;
        S.StartedAt ??= DateTime.UtcNow;
        Mark(RunPhase.Training, G.Step);
        var from = checkpoint.State.Checkpoint is { } cp ? $"resuming from the checkpoint at step {cp.Step}" : "from step 0";
        AddEvent("job grain", $"gang formed: {G.Ranks.Count} ranks (membership epoch {G.Epoch}), {from}");
    }

    void Join(GangSeat seat, string nodeId)
    {
        var m = Rules();
        if (!m.RequestJoin(Member(seat))) return;
        var admitted = m.AdmitWhilePaused();
        Store(m);
        AddEvent(nodeId, admitted is null
            ? $"rank on {nodeId} is up and joins at the next step boundary"
            : $"rank on {nodeId} joined at once (the job was paused below its minimum); now {G.Ranks.Count} ranks (membership epoch {G.Epoch})");
    }

    /// <summary>While running below its maximum, keeps a growth request in the scheduler's queue.</summary>
    void RequestGrowth()
    {
        var room = S.MaxRanks - S.Ranks.Count;
        if (room <= 0 || S.State != JobState.Running || DateTime.UtcNow - _lastGrowthRequest < GrowthRequestPeriod) return;
        _lastGrowthRequest = DateTime.UtcNow;
        _ = GrainFactory.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster)
            .Enqueue(new QueuedJob(JobId, S.Priority, S.Sequence, 1, null, S.MemoryBytes, Gang: true, MaxDevices: room, Growth: true));
    }

    ElasticMembership Rules() =>
        new(S.MinRanks, S.MaxRanks, G.Ranks.Select(Member).ToList(), G.Epoch, G.Step, G.Waiting.Select(Member).ToList());

    /// <summary>Runs a membership rule and stores the membership it leaves.</summary>
    T Apply<T>(ElasticMembership m, Func<ElasticMembership, T> rule)
    {
        var result = rule(m);
        Store(m);
        return result;
    }

    void Store(ElasticMembership m)
    {
        var view = m.View;
        G.Ranks = view.Ranks.Select(Seat).ToList();
        G.Waiting = m.Waiting.Select(Seat).ToList();
        G.Epoch = view.Epoch;
        G.Step = view.Step;
    }

    static RankMember Member(GangSeat s) => new(Id(s.Rank), s.Endpoint);
    static GangSeat Seat(RankMember m) => new(long.Parse(m.Id), m.Endpoint);
    static string Id(long epoch) => epoch.ToString(System.Globalization.CultureInfo.InvariantCulture);

    int RankNumber(long epoch) => G.Ranks.FindIndex(r => r.Rank == epoch);

    string Describe(IEnumerable<Assignment> ranks) => string.Join(", ", ranks.Select(r => $"{r.NodeId}/{r.Device}"));

    string Describe(IEnumerable<RankMember> members) =>
        Describe(members.Select(m => S.Ranks.FirstOrDefault(r => Id(r.Epoch) == m.Id)).OfType<Assignment>());

    GangView View(long? asker)
    {
        var formed = G.Formed;
        string? stop = asker is { } a && S.Ranks.All(r => r.Epoch != a) ? "no longer a rank of this job" : null;
        return new GangView(G.Epoch, G.Ranks.Select(r => r.Rank).ToList(), G.Ranks.Select(r => r.Endpoint).ToList(), G.Step,
            formed && G.Ranks.Count >= S.MinRanks, S.Ranks.Count - (formed ? G.Ranks.Count : 0), stop);
    }

    GangView StopView(string reason) => new(S.Gang?.Epoch ?? 0, [], [], S.Gang?.Step ?? 0, false, 0, reason);
}
