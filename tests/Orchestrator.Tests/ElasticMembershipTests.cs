using Orchestrator.Core.Collectives;
using Orchestrator.Core.DataPlane;
using Orchestrator.Core.Membership;

namespace Orchestrator.Tests;

public class ElasticMembershipTests
{
    static RankMember R(string id) => new(id, $"127.0.0.1:{5000 + id[0]}");

    [Fact]
    public void FailedRank_IsRemovedAtOnce_SurvivorsKeepOrder_StepDoesNotRollBack()
    {
        var m = new ElasticMembership(2, 4, [R("a"), R("b"), R("c")]);
        m.CompleteStep(120);

        var view = m.Remove("b")!;

        Assert.Equal(2, view.MembershipEpoch);
        Assert.Equal(["a", "c"], view.Ranks.Select(r => r.Id).ToArray());
        Assert.Equal(120, view.Step);
        Assert.True(view.CanTrain);
    }

    [Fact]
    public void RemovingAStranger_ChangesNothing()
    {
        var m = new ElasticMembership(1, 2, [R("a")]);

        Assert.Null(m.Remove("zombie"));
        Assert.Equal(1, m.MembershipEpoch);
    }

    [Fact]
    public void Joiner_WaitsForTheStepBoundary_ThenJoinsLastInANewEpoch()
    {
        var m = new ElasticMembership(2, 3, [R("a"), R("b")]);

        Assert.True(m.RequestJoin(R("c")));
        Assert.Equal(1, m.MembershipEpoch);
        var view = m.CompleteStep(10)!;

        Assert.Equal(2, view.MembershipEpoch);
        Assert.Equal(["a", "b", "c"], view.Ranks.Select(r => r.Id).ToArray());
        Assert.Equal("c", Assert.Single(view.Joined).Id);
        Assert.Equal("a", view.Ranks[0].Id); // the broadcast source
        Assert.Null(m.CompleteStep(11));
    }

    [Fact]
    public void Joins_BeyondMax_OrTwice_AreRefused()
    {
        var m = new ElasticMembership(1, 2, [R("a")]);

        Assert.True(m.RequestJoin(R("b")));
        Assert.False(m.RequestJoin(R("b")));
        Assert.False(m.RequestJoin(R("c")));
        Assert.False(m.RequestJoin(R("a")));
    }

    [Fact]
    public void BelowMin_ThePausedJobAdmitsJoinersWithoutWaitingForAStep()
    {
        var m = new ElasticMembership(2, 3, [R("a"), R("b")]);
        m.CompleteStep(50);

        var paused = m.Remove("a")!;
        Assert.False(paused.CanTrain);
        Assert.True(m.RequestJoin(R("d")));
        var resumed = m.AdmitWhilePaused()!;

        Assert.True(resumed.CanTrain);
        Assert.Equal(["b", "d"], resumed.Ranks.Select(r => r.Id).ToArray());
        Assert.Equal(50, resumed.Step);
        Assert.Equal(3, resumed.MembershipEpoch);
    }

    [Fact]
    public void StepCounter_NeverGoesBackwards()
    {
        var m = new ElasticMembership(1, 1, [R("a")]);
        m.CompleteStep(30);

        Assert.Throws<InvalidOperationException>(() => m.CompleteStep(29));
        Assert.Equal(30, m.Step);
    }

    [Fact]
    public void InvalidBounds_AreRefused()
    {
        Assert.Throws<ArgumentException>(() => new ElasticMembership(3, 2, []));
        Assert.Throws<ArgumentException>(() => new ElasticMembership(1, 1, [R("a"), R("b")]));
        Assert.Throws<ArgumentException>(() => new ElasticMembership(1, 3, [R("a"), R("a")]));
    }

    [Fact]
    public void ReForm_StartsANewEpochWithTheSameRanks()
    {
        var m = new ElasticMembership(2, 3, [R("a"), R("b")], membershipEpoch: 4, step: 30);

        var view = m.ReForm();

        Assert.Equal(5, view.MembershipEpoch);
        Assert.Equal(["a", "b"], view.Ranks.Select(r => r.Id).ToArray());
        Assert.Equal(30, view.Step);
    }

    [Fact]
    public void RestoredWaitingRanks_JoinAtTheNextBoundary_AndCountTowardsMax()
    {
        var m = new ElasticMembership(1, 3, [R("a"), R("b")], membershipEpoch: 2, step: 10, waiting: [R("c")]);

        Assert.False(m.RequestJoin(R("d")));
        var view = m.CompleteStep(20)!;

        Assert.Equal(["a", "b", "c"], view.Ranks.Select(r => r.Id).ToArray());
        Assert.Equal(3, view.MembershipEpoch);
        Assert.Throws<ArgumentException>(() => new ElasticMembership(1, 3, [R("a")], waiting: [R("a")]));
    }
}

/// <summary>The verdict on a rank that a peer reports: remove it only when its process is gone.</summary>
public class FailureJudgeTests
{
    static readonly DateTime Report = new(2026, 1, 1, 12, 0, 0, DateTimeKind.Utc);
    static readonly TimeSpan Limit = TimeSpan.FromSeconds(2.5);

    [Fact]
    public void HeardFromAfterTheReport_IsAliveAndReFormed_UntilItStallsTooOften()
    {
        var heartbeat = Report.AddSeconds(0.9);

        Assert.Equal(SuspectVerdict.ReForm, FailureJudge.Judge(Report.AddSeconds(1), Report, heartbeat, false, Limit, reFormsWithoutProgress: 0));
        Assert.Equal(SuspectVerdict.ReForm, FailureJudge.Judge(Report.AddSeconds(1), Report, heartbeat, false, Limit, reFormsWithoutProgress: 2));
        Assert.Equal(SuspectVerdict.Remove, FailureJudge.Judge(Report.AddSeconds(1), Report, heartbeat, false, Limit, reFormsWithoutProgress: 3));
    }

    [Fact]
    public void SilentSinceBeforeTheReport_IsWaitedFor_ThenRemovedPastTheLimit()
    {
        var heartbeat = Report.AddSeconds(-0.5);

        Assert.Equal(SuspectVerdict.Wait, FailureJudge.Judge(Report.AddSeconds(1.9), Report, heartbeat, false, Limit, 0));
        Assert.Equal(SuspectVerdict.Remove, FailureJudge.Judge(Report.AddSeconds(2.1), Report, heartbeat, false, Limit, 0));
    }

    [Fact]
    public void ADeadNode_IsRemovedAtOnce_AndANeverHeardNodeGetsTheLimitFromTheReport()
    {
        Assert.Equal(SuspectVerdict.Remove, FailureJudge.Judge(Report, Report, Report.AddSeconds(1), nodeDead: true, Limit, 0));
        Assert.Equal(SuspectVerdict.Wait, FailureJudge.Judge(Report.AddSeconds(2), Report, null, false, Limit, 0));
        Assert.Equal(SuspectVerdict.Remove, FailureJudge.Judge(Report.AddSeconds(3), Report, null, false, Limit, 0));
    }
}

public class ReceiveDeadlineTests
{
    [Fact]
    public void StartsAtTheInitialWait_ThenFollowsTheMeasuredStepTime_WithinItsBounds()
    {
        var deadline = new ReceiveDeadline(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(60), stepsOfSlack: 20);
        var initial = deadline.Current;
        deadline.Observe(TimeSpan.FromMilliseconds(10));
        var fastSteps = deadline.Current;
        for (int i = 0; i < 200; i++) deadline.Observe(TimeSpan.FromMilliseconds(500));
        var slowSteps = deadline.Current;
        for (int i = 0; i < 200; i++) deadline.Observe(TimeSpan.FromSeconds(10));

        Assert.Equal(TimeSpan.FromSeconds(15), initial);
        Assert.Equal(TimeSpan.FromSeconds(3), fastSteps);
        Assert.InRange(slowSteps.TotalSeconds, 9.9, 10.1);
        Assert.Equal(TimeSpan.FromSeconds(60), deadline.Current);
    }
}
