using Orchestrator.Core.Collectives;

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

        Assert.Equal(2, view.Epoch);
        Assert.Equal(["a", "c"], view.Ranks.Select(r => r.Id).ToArray());
        Assert.Equal(120, view.Step);
        Assert.True(view.CanTrain);
    }

    [Fact]
    public void RemovingAStranger_ChangesNothing()
    {
        var m = new ElasticMembership(1, 2, [R("a")]);

        Assert.Null(m.Remove("zombie"));
        Assert.Equal(1, m.Epoch);
    }

    [Fact]
    public void Joiner_WaitsForTheStepBoundary_ThenJoinsLastInANewEpoch()
    {
        var m = new ElasticMembership(2, 3, [R("a"), R("b")]);

        Assert.True(m.RequestJoin(R("c")));
        Assert.Equal(1, m.Epoch);
        var view = m.CompleteStep(10)!;

        Assert.Equal(2, view.Epoch);
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
        Assert.Equal(3, resumed.Epoch);
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
}
