using Orchestrator.Core.Coding;

namespace Orchestrator.Tests;

/// <summary>Moving a coding group's members back to one per silo when silos join.</summary>
public sealed class GroupSpreadTests
{
    [Fact]
    public void TwoMembersOnOneSilo_TheHigherMovesToTheSiloThatJoined()
    {
        var placements = new Dictionary<int, string> { [0] = "a", [1] = "b", [2] = "c", [3] = "b" };
        Assert.False(GroupSpread.IsSpread(placements, ["a", "b", "c"]));

        var moves = GroupSpread.Plan(placements, ["a", "b", "c", "d"]);

        Assert.Equal([new GroupSpread.Move(3, "b", "d")], moves);
        foreach (var m in moves) placements[m.Member] = m.To;
        Assert.True(GroupSpread.IsSpread(placements, ["a", "b", "c", "d"]));
    }

    [Fact]
    public void MovesGoAsFarAsTheFreeSilosAllow_FromTheMostCrowdedSiloFirst()
    {
        // Six members on three silos (three, two, one), one silo free: one move, from the silo with three.
        var placements = new Dictionary<int, string> { [0] = "a", [1] = "a", [2] = "a", [3] = "b", [4] = "b", [5] = "c" };
        Assert.Equal([new GroupSpread.Move(2, "a", "d")], GroupSpread.Plan(placements, ["a", "b", "c", "d"]));

        // Three free silos: every member gets its own.
        var moves = GroupSpread.Plan(placements, ["a", "b", "c", "d", "e", "f"]);
        foreach (var m in moves) placements[m.Member] = m.To;
        Assert.Equal(3, moves.Count);
        Assert.True(GroupSpread.IsSpread(placements, ["a", "b", "c", "d", "e", "f"]));
        Assert.Equal(6, placements.Values.Distinct().Count());
    }

    [Fact]
    public void NothingMoves_WhenTheGroupIsSpread_OrNoSiloIsFree_AndMembersOnDeadSilosAreLeftToTheirNextPlacement()
    {
        var spread = new Dictionary<int, string> { [0] = "a", [1] = "b", [2] = "c" };
        Assert.Empty(GroupSpread.Plan(spread, ["a", "b", "c", "d"]));
        var shared = new Dictionary<int, string> { [0] = "a", [1] = "a", [2] = "b" };
        Assert.Empty(GroupSpread.Plan(shared, ["a", "b"]));
        // Member 2's silo "x" is dead: it is placed again when next used, and "x" is not a silo to move to.
        var withDead = new Dictionary<int, string> { [0] = "a", [1] = "a", [2] = "x" };
        Assert.Equal([new GroupSpread.Move(1, "a", "b")], GroupSpread.Plan(withDead, ["a", "b"]));
        Assert.True(GroupSpread.IsSpread(new Dictionary<int, string> { [0] = "a", [1] = "x", [2] = "x" }, ["a", "b"]));
    }
}
