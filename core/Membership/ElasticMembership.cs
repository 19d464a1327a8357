namespace Orchestrator.Core.Membership;

/// <summary>A rank of a data-parallel job: its identity (an assignment) and where its data plane listens.</summary>
public sealed record RankMember(string Id, string Endpoint);

/// <summary>
/// One membership epoch of a job's ranks. Ranks are numbered by position; rank 0 is the broadcast source for joiners.
/// <see cref="Step"/> is the number of completed steps: training resumes there in every new membership epoch.
/// </summary>
public sealed record MembershipView(long MembershipEpoch, IReadOnlyList<RankMember> Ranks, long Step, bool CanTrain, IReadOnlyList<RankMember> Joined);

/// <summary>
/// The rules of elastic membership, kept by the job grain (the rendezvous):
/// <list type="bullet">
/// <item>a rank that fails is removed at once: the membership epoch grows, the survivors keep their order and are
/// renumbered, and the step stays where it is (no rollback: every survivor holds the whole state);</item>
/// <item>a new rank waits for the next step boundary, then joins at the end (the highest rank) in a new membership epoch and
/// receives the state by broadcast from rank 0; joins beyond <c>max</c> are refused;</item>
/// <item>with fewer than <c>min</c> ranks the job pauses (<see cref="MembershipView.CanTrain"/> false) until
/// joiners bring it back to <c>min</c>;</item>
/// <item>the step counter never goes backwards.</item>
/// </list>
/// </summary>
public sealed class ElasticMembership
{
    readonly int _min, _max;
    readonly List<RankMember> _ranks;
    readonly List<RankMember> _waiting = [];

    /// <param name="waiting">Ranks that asked to join and wait for the next step boundary (restored from storage).</param>
    public ElasticMembership(int min, int max, IReadOnlyList<RankMember> initial, long membershipEpoch = 1, long step = 0, IReadOnlyList<RankMember>? waiting = null)
    {
        if (min < 1 || max < min) throw new ArgumentException($"need 1 ≤ min ≤ max, got min {min}, max {max}");
        if (initial.Count > max) throw new ArgumentException($"{initial.Count} initial ranks exceed max {max}");
        var ids = initial.Concat(waiting ?? []).Select(r => r.Id).ToList();
        if (ids.Distinct().Count() != ids.Count) throw new ArgumentException("a rank appears twice");
        (_min, _max, _ranks, MembershipEpoch, Step) = (min, max, initial.ToList(), membershipEpoch, step);
        _waiting.AddRange(waiting ?? []);
    }

    public long MembershipEpoch { get; private set; }
    public long Step { get; private set; }
    public IReadOnlyList<RankMember> Waiting => _waiting;

    public MembershipView View => new(MembershipEpoch, _ranks.ToList(), Step, _ranks.Count >= _min, []);

    /// <summary>Removes a failed rank at once; returns the new membership epoch's view, or null if it was not a member.</summary>
    public MembershipView? Remove(string id)
    {
        _waiting.RemoveAll(r => r.Id == id);
        if (_ranks.RemoveAll(r => r.Id == id) == 0) return null;
        MembershipEpoch++;
        return View;
    }

    /// <summary>
    /// Starts a new membership epoch with the same ranks: two live ranks lost contact (a dropped connection, a stall), so
    /// everyone re-forms the collective and agrees on the state again, and nobody is removed.
    /// </summary>
    public MembershipView ReForm()
    {
        MembershipEpoch++;
        return View;
    }

    /// <summary>Asks to join; false when the rank is already in or waiting, or the job is at its maximum.</summary>
    public bool RequestJoin(RankMember member)
    {
        if (_ranks.Concat(_waiting).Any(r => r.Id == member.Id)) return false;
        if (_ranks.Count + _waiting.Count >= _max) return false;
        _waiting.Add(member);
        return true;
    }

    /// <summary>
    /// Records that step <paramref name="completedSteps"/> is done (a count of completed steps). If ranks are
    /// waiting, they join now: returns the new membership epoch's view, listing them in <see cref="MembershipView.Joined"/>.
    /// </summary>
    public MembershipView? CompleteStep(long completedSteps)
    {
        if (completedSteps < Step) throw new InvalidOperationException($"step {completedSteps} is behind the membership's step {Step}: the step counter never goes backwards");
        Step = completedSteps;
        return AdmitWaiting();
    }

    /// <summary>While the job cannot train (below min), joiners are admitted without waiting for a step.</summary>
    public MembershipView? AdmitWhilePaused() => _ranks.Count < _min ? AdmitWaiting() : null;

    MembershipView? AdmitWaiting()
    {
        if (_waiting.Count == 0) return null;
        var joined = _waiting.ToList();
        _ranks.AddRange(joined);
        _waiting.Clear();
        MembershipEpoch++;
        return View with { Joined = joined };
    }
}

public enum SuspectVerdict
{
    /// <summary>Not sure yet: the suspect's process was heard from before the report, but not long ago.</summary>
    Wait,
    /// <summary>The suspect is gone (silent past the deadline, or its node is declared dead): remove it.</summary>
    Remove,
    /// <summary>The suspect's process is alive (heard from after the report): re-form without removing anyone.</summary>
    ReForm,
}

/// <summary>
/// Judges a rank that a peer reports as failed (a closed connection or a receive past its deadline), using
/// the liveness of the suspect's process (its node's heartbeats). A report alone never removes a rank: the
/// reporter may be the one at fault, or the suspect may itself be waiting on the rank that really failed.
/// </summary>
public static class FailureJudge
{
    /// <param name="firstReport">When a peer first reported the suspect in this membership epoch.</param>
    /// <param name="lastHeartbeat">The suspect's node's latest heartbeat; null when none was received yet.</param>
    /// <param name="silenceLimit">How long a process may be silent before it counts as gone.</param>
    /// <param name="reFormsWithoutProgress">Re-forms in a row without a completed step; past <paramref name="maxReForms"/>
    /// the suspect is removed even though its process lives (its training is stuck).</param>
    public static SuspectVerdict Judge(DateTime now, DateTime firstReport, DateTime? lastHeartbeat, bool nodeDead, TimeSpan silenceLimit,
        int reFormsWithoutProgress, int maxReForms = 3)
    {
        if (nodeDead) return SuspectVerdict.Remove;
        if (lastHeartbeat > firstReport) return reFormsWithoutProgress >= maxReForms ? SuspectVerdict.Remove : SuspectVerdict.ReForm;
        var silentSince = lastHeartbeat ?? firstReport;
        return now - silentSince > silenceLimit ? SuspectVerdict.Remove : SuspectVerdict.Wait;
    }
}
