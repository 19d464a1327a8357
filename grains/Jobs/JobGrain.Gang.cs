using System.Globalization;
using Orchestrator.Core.Membership;

namespace Orchestrator.Grains;

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
    long _suspectsMembershipEpoch;
    int _reFormsWithoutProgress;
    (DateTime Since, GangPause Why)? _pause;
    DateTime _lastGrowthRequest;

    GangRecord G => store.State.Gang!;
    List<Assignment> Ranks => store.State.Ranks;

    public async Task<bool> MarkGangScheduled(IReadOnlyList<Assignment> ranks)
    {
        if (!Exists || !IsDataParallel || ranks.Count == 0 || ranks.Any(a => a.AssignmentEpoch <= R.HighestAssignmentEpoch)) return false;
        if (R.State.IsQueued() && ranks.Count >= D.MinRanks && ranks.Count <= D.MaxRanks)
        {
            store.State.Ranks = ranks.ToList();
            // A new gang: a fresh membership in a newer membership epoch, resuming where the checkpoint is.
            store.State.Gang = new GangRecord { MembershipEpoch = G.MembershipEpoch + 1, Step = R.CheckpointStep ?? 0 };
            R.Assignment = ranks[0];
            R.State = JobLifecycle.Apply(R.State, JobTrigger.Placed, R.Recoveries > 0);
            R.Unschedulable = null;
            Mark(RunPhase.Starting);
            AddEvent(JobEvent.GangPlaced(ranks, R.CheckpointStep));
        }
        else if (R.State == JobState.Running && G.Formed && Ranks.Count + ranks.Count <= D.MaxRanks)
        {
            Ranks.AddRange(ranks);
            AddEvent(JobEvent.GangGrowing(ranks));
        }
        else return false;
        R.HighestAssignmentEpoch = ranks.Max(a => a.AssignmentEpoch);
        await SaveAndPublish();
        return true;
    }

    public async Task<StartReply> JoinGang(long assignmentEpoch, string nodeId, string endpoint)
    {
        if (Refused(assignmentEpoch) is { } why) return StartReply.Refuse(why);
        if (!IsDataParallel) return StartReply.Refuse(new Refusal(StopCause.WrongKind, "not a data-parallel job"));
        var seat = new GangSeat(assignmentEpoch, endpoint);
        if (!G.Formed)
        {
            G.Waiting.RemoveAll(w => w.AssignmentEpoch == assignmentEpoch);
            G.Waiting.Add(seat);
            TryForm();
        }
        else if (G.Ranks.FirstOrDefault(r => r.AssignmentEpoch == assignmentEpoch) is { } member)
        {
            // The same assignment with a new endpoint: its worker restarted, so the old process is gone.
            if (member.Endpoint != endpoint)
            {
                Apply(Rules(), m => m.Remove(Id(assignmentEpoch)));
                AddEvent(JobEvent.RankRestarted(nodeId));
                Join(seat, nodeId);
            }
        }
        else if (G.Waiting.All(w => w.AssignmentEpoch != assignmentEpoch)) Join(seat, nodeId);
        await SaveAndPublish();
        return new StartReply(null, D.SpecJson, checkpoint.State.Kept.ToList(), View(assignmentEpoch), D.Shards);
    }

    public async Task<GangView> SyncGang(long assignmentEpoch, long completedSteps)
    {
        if (Refused(assignmentEpoch) is { } why) return StopView(why);
        if (G.Formed && completedSteps > G.Step)
        {
            var admitted = Apply(Rules(), m => m.CompleteStep(completedSteps));
            _reFormsWithoutProgress = 0;
            if (_pause is { } p)
            {
                Mark(RunPhase.Training, G.Step);
                AddEvent(JobEvent.TrainingResumed(completedSteps, G.Ranks.Count, DateTime.UtcNow - p.Since, p.Why));
                _pause = null;
            }
            if (admitted is not null)
            {
                AddEvent(JobEvent.RanksJoined(Placements(admitted.Joined), completedSteps, G.Ranks.Count, G.MembershipEpoch));
                _pause = (DateTime.UtcNow, GangPause.RanksJoined);
                Mark(RunPhase.Paused);
                await SaveAndPublish();
            }
            else if (DateTime.UtcNow - _lastProgressWrite > ProgressWriteInterval) await SaveAndPublish();
        }
        RequestGrowth();
        return View(assignmentEpoch);
    }

    public async Task<GangView> ReportPeerFailure(long assignmentEpoch, long membershipEpoch, long suspect, long step, PeerFailure failure, string detail)
    {
        if (Refused(assignmentEpoch) is { } why) return StopView(why);
        if (!G.Formed || membershipEpoch != G.MembershipEpoch || suspect == assignmentEpoch || G.Ranks.All(r => r.AssignmentEpoch != suspect))
            return View(assignmentEpoch);
        var now = DateTime.UtcNow;
        if (_suspectsMembershipEpoch != G.MembershipEpoch)
        {
            _suspects.Clear();
            _suspectsMembershipEpoch = G.MembershipEpoch;
        }
        if (!_suspects.TryGetValue(suspect, out var first)) _suspects[suspect] = first = now;
        var category = FailureTaxonomy.CategoryOf(failure);
        if (_pause is null)
        {
            _pause = (now, GangPause.PeerLost);
            T.Interrupted(RunPhase.Paused, category, R.Progress);
        }
        var rank = Ranks.First(r => r.AssignmentEpoch == suspect);
        var node = await GrainFactory.GetGrain<INodeGrain>(rank.NodeId).GetInfo();
        var verdict = FailureJudge.Judge(now, first, node.LastHeartbeat, node.Health == NodeHealth.Dead, options.Value.RankSilenceLimit, _reFormsWithoutProgress);
        switch (verdict)
        {
            case SuspectVerdict.Remove:
                double? silent = node.LastHeartbeat is { } hb ? (now - hb).TotalSeconds : null;
                await RemoveRank(suspect, RankRemoval.FoundDead, Reporter(assignmentEpoch), category, RankNumber(suspect), step, silent, detail);
                break;
            case SuspectVerdict.ReForm:
                var suspectRank = RankNumber(suspect);
                Apply(Rules(), m => m.ReForm());
                _reFormsWithoutProgress++;
                AddEvent(JobEvent.MembershipReFormed(Reporter(assignmentEpoch), step, G.MembershipEpoch, G.Ranks.Count, suspectRank, rank, failure, detail));
                await SaveAndPublish();
                break;
        }
        return View(assignmentEpoch);
    }

    /// <summary>Removes a rank (found dead by its peers, not taken by its node, or lost with its node); returns the
    /// queue entry when the whole job must be placed again (no rank left, or a gang that has not formed fell below
    /// its minimum). A rank found dead is reported to its node, whose incident then names this job if the node turns
    /// out lost.</summary>
    async Task<QueuedJob?> RemoveRank(long assignmentEpoch, RankRemoval removal, string source, FailureCategory category,
        int? rankIndex = null, long? step = null, double? silentSeconds = null, string? detail = null)
    {
        var rank = Ranks.First(r => r.AssignmentEpoch == assignmentEpoch);
        Ranks.Remove(rank);
        var node = GrainFactory.GetGrain<INodeGrain>(rank.NodeId);
        await (removal == RankRemoval.FoundDead ? node.RankLost(JobId, rank.AssignmentEpoch) : node.Unassign(JobId, rank.AssignmentEpoch));
        if (G.Formed && G.Ranks.Any(r => r.AssignmentEpoch == assignmentEpoch)) Apply(Rules(), m => m.Remove(Id(assignmentEpoch)));
        G.Waiting.RemoveAll(w => w.AssignmentEpoch == assignmentEpoch);
        var left = G.Formed ? G.Ranks.Count : Ranks.Count;
        AddEvent(JobEvent.RankRemoved(source, removal, rank, rankIndex, step, silentSeconds, detail) with { Ranks = left, MembershipEpoch = G.MembershipEpoch });
        QueuedJob? requeued = null;
        if (left == 0 || (!G.Formed && Ranks.Count < D.MinRanks))
        {
            foreach (var r in Ranks) await GrainFactory.GetGrain<INodeGrain>(r.NodeId).Unassign(JobId, r.AssignmentEpoch);
            Ranks.Clear();
            store.State.Gang = new GangRecord { MembershipEpoch = G.MembershipEpoch + 1, Step = G.Step };
            R.Assignment = null;
            R.State = JobLifecycle.Apply(R.State, JobTrigger.Lost, R.Recoveries > 0);
            R.Recoveries++;
            T.Interrupted(RunPhase.Queued, category, R.Progress);
            AddEvent(JobEvent.GangRequeued(R.CheckpointStep));
            requeued = Queued();
        }
        else if (!G.Formed) TryForm();
        else if (G.Ranks.Count < D.MinRanks)
        {
            _pause ??= (DateTime.UtcNow, GangPause.BelowMinimum);
            T.Interrupted(RunPhase.Paused, category, R.Progress);
            AddEvent(JobEvent.GangPaused(G.Ranks.Count, D.MinRanks));
        }
        await SaveAndPublish();
        await Scheduler.Kick();
        RequestGrowth();
        return requeued;
    }

    /// <summary>The gang forms once every placed rank has its endpoint up.</summary>
    void TryForm()
    {
        if (Ranks.Count < D.MinRanks || !Ranks.All(r => G.Waiting.Any(w => w.AssignmentEpoch == r.AssignmentEpoch))) return;
        G.Ranks = Ranks.Select(r => G.Waiting.First(w => w.AssignmentEpoch == r.AssignmentEpoch)).ToList();
        G.Waiting.Clear();
        G.MembershipEpoch++;
        G.Formed = true;
        R.State = JobLifecycle.Apply(R.State, JobTrigger.Started, R.Recoveries > 0);
        R.StartedAt ??= DateTime.UtcNow;
        Mark(RunPhase.Training, G.Step);
        AddEvent(JobEvent.GangFormed(G.Ranks.Count, G.MembershipEpoch, checkpoint.State.Newest?.Step ?? 0));
    }

    void Join(GangSeat seat, string nodeId)
    {
        var m = Rules();
        if (!m.RequestJoin(Member(seat))) return;
        var admitted = m.AdmitWhilePaused();
        Store(m);
        AddEvent(admitted is null ? JobEvent.RankUp(nodeId) : JobEvent.RankJoinedAtOnce(nodeId, G.Ranks.Count, G.MembershipEpoch));
    }

    /// <summary>While running below its maximum, keeps a growth request in the scheduler's queue.</summary>
    void RequestGrowth()
    {
        var room = D.MaxRanks - Ranks.Count;
        if (room <= 0 || R.State != JobState.Running || DateTime.UtcNow - _lastGrowthRequest < GrowthRequestPeriod) return;
        _lastGrowthRequest = DateTime.UtcNow;
        _ = Scheduler.Enqueue(new QueuedJob(JobId, D.Priority, D.Sequence, 1, null, D.MemoryBytes, Gang: true, MaxDevices: room, Growth: true));
    }

    ElasticMembership Rules() =>
        new(D.MinRanks, D.MaxRanks, G.Ranks.Select(Member).ToList(), G.MembershipEpoch, G.Step, G.Waiting.Select(Member).ToList());

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
        G.MembershipEpoch = view.MembershipEpoch;
        G.Step = view.Step;
    }

    static RankMember Member(GangSeat s) => new(Id(s.AssignmentEpoch), s.Endpoint);
    static GangSeat Seat(RankMember m) => new(long.Parse(m.Id, CultureInfo.InvariantCulture), m.Endpoint);
    static string Id(long assignmentEpoch) => assignmentEpoch.ToString(CultureInfo.InvariantCulture);

    int RankNumber(long assignmentEpoch) => G.Ranks.FindIndex(r => r.AssignmentEpoch == assignmentEpoch);

    List<Assignment> Placements(IEnumerable<RankMember> members) =>
        members.Select(m => Ranks.FirstOrDefault(r => Id(r.AssignmentEpoch) == m.Id)).OfType<Assignment>().ToList();

    GangView View(long? asker)
    {
        var formed = G.Formed;
        var stop = asker is { } a && Ranks.All(r => r.AssignmentEpoch != a) ? new Refusal(StopCause.NotARank, "no longer a rank of this job") : null;
        return new GangView(G.MembershipEpoch, G.Ranks.Select(r => r.AssignmentEpoch).ToList(), G.Ranks.Select(r => r.Endpoint).ToList(), G.Step,
            formed && G.Ranks.Count >= D.MinRanks, Ranks.Count - (formed ? G.Ranks.Count : 0), stop);
    }

    GangView StopView(Refusal why) => new(store.State.Gang?.MembershipEpoch ?? 0, [], [], store.State.Gang?.Step ?? 0, false, 0, why);
}
