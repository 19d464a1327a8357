using System.Diagnostics;

namespace Orchestrator.Worker.Training;

/// <summary>Test metrics at a training epoch's end: accuracy, and for a click model its AUC and log loss.</summary>
public sealed record TestMetrics(double Accuracy, double? Auc = null, double? LogLoss = null);

/// <summary>
/// What one runner trains with the <see cref="TrainingLoop"/>: members that step together (a fused array's jobs; a
/// data-parallel rank or a recommendation job is one member), each reporting through its own channel.
/// </summary>
public abstract class TrainingSession
{
    /// <summary>The members still training, in the order <see cref="TrainStep"/> returns their losses.</summary>
    public abstract IReadOnlyList<MemberChannel> Members { get; }

    /// <summary>False where another process reports for the members (data-parallel ranks other than 0): no progress,
    /// checkpoints or result from here.</summary>
    public virtual bool Reports => true;

    /// <summary>Samples one step trains, per member (a data-parallel job's global batch).</summary>
    public abstract int SamplesPerStep { get; }

    public abstract long Step(int member);
    public abstract long TotalSteps(int member);
    public abstract int TrainingEpoch(int member);
    public abstract bool Done(int member);

    /// <summary>Training epochs the member's result counts (by default the passes completed).</summary>
    public virtual int CompletedTrainingEpochs(int member) => TrainingEpoch(member);

    /// <summary>One step of every member; one loss each, or null when no step was completed (a rollback redid it).</summary>
    public abstract Task<float[]?> TrainStep(CancellationToken ct);

    /// <summary>Set when the whole session must end after a step, with this outcome for every member.</summary>
    public virtual MemberOutcome? EndedWith => null;

    /// <summary>Test metrics of every member (called on every process of a data-parallel job at once).</summary>
    public abstract Task<TestMetrics[]> Evaluate(CancellationToken ct);

    /// <summary>The member's state to resume from: its checkpoint.</summary>
    public abstract byte[] Checkpoint(int member);

    /// <summary>The member's result, with what only this kind of training knows (a data-parallel job's time split).</summary>
    public virtual JobResult Finish(int member, JobResult result) => result;

    /// <summary>Members leave (finished, failed, stopped) without disturbing the others.</summary>
    public abstract void Leave(IReadOnlyCollection<int> members);

    /// <summary>After every step, once its members are handled; false ends this run of the loop (the runner goes on:
    /// a data-parallel job's membership changed).</summary>
    public virtual Task<bool> AfterStep(CancellationToken ct) => Task.FromResult(true);

    /// <summary>What to tell a member whose loss is not finite.</summary>
    public abstract string NonFiniteAdvice(int member);
}

/// <summary>
/// The worker's one training loop, under the array, rank and recommendation runners: it lets stopped members leave
/// (a preempted one with a checkpoint of this very step), steps, fails members whose loss is not finite, evaluates at
/// every training epoch's end, reports progress at epoch ends and at most once a second, checkpoints every
/// <c>train.checkpointEvery</c> steps, and finishes members that are done. A member's samples/s is the samples this run
/// trained it on over the run's training time (test-set evaluations excluded), in progress and result alike.
/// </summary>
public sealed class TrainingLoop(TrainingSession session, int checkpointEvery)
{
    static readonly TimeSpan ProgressPeriod = TimeSpan.FromSeconds(1);
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly Stopwatch _evaluating = new();
    readonly Dictionary<MemberChannel, long> _firstStep = [];
    readonly Dictionary<MemberChannel, TestMetrics> _metrics = [];
    TimeSpan _lastProgress;
    double _longestStep;

    /// <summary>Trains until every member has left (true), or the session ends this run (false).</summary>
    public async Task<bool> Run(CancellationToken ct)
    {
        for (int k = 0; k < session.Members.Count; k++) _firstStep.TryAdd(session.Members[k], session.Step(k));
        while (session.Members.Count > 0)
        {
            LeaveIfStopped();
            if (session.Members.Count == 0) break;
            var trainingEpochs = Enumerable.Range(0, session.Members.Count).Select(session.TrainingEpoch).ToArray();
            var started = _clock.Elapsed;
            var losses = await session.TrainStep(ct);
            _longestStep = Math.Max(_longestStep, (_clock.Elapsed - started).TotalSeconds);
            if (session.EndedWith is { } outcome)
            {
                foreach (var m in session.Members) m.End(outcome);
                return true;
            }
            if (losses is null) continue;
            await AfterStep(losses, trainingEpochs, ct);
            if (session.Members.Count > 0 && !await session.AfterStep(ct)) return false;
        }
        return true;
    }

    void LeaveIfStopped()
    {
        var leaving = new List<int>();
        for (int k = 0; k < session.Members.Count; k++)
        {
            var member = session.Members[k];
            if (member.StopReason is not { } why) continue;
            if (member.YieldRequested && session.Reports) member.Post(new JobCheckpoint(session.Step(k), session.Checkpoint(k), DateTime.UtcNow));
            member.End(MemberOutcome.Stopped(why));
            leaving.Add(k);
        }
        if (leaving.Count > 0) session.Leave(leaving);
    }

    async Task AfterStep(float[] losses, int[] epochsBefore, CancellationToken ct)
    {
        var width = session.Members.Count;
        var epochEnded = Enumerable.Range(0, width).Select(k => session.TrainingEpoch(k) != epochsBefore[k] || session.Done(k)).ToArray();
        TestMetrics[]? evaluated = null;
        if (epochEnded.Any(e => e))
        {
            _evaluating.Start();
            evaluated = await session.Evaluate(ct);
            _evaluating.Stop();
        }
        var report = epochEnded.Any(e => e) || _clock.Elapsed - _lastProgress >= ProgressPeriod;
        if (report) _lastProgress = _clock.Elapsed;
        var leaving = new List<int>();
        for (int k = 0; k < width; k++)
        {
            var member = session.Members[k];
            var step = session.Step(k);
            if (!float.IsFinite(losses[k]))
            {
                member.End(MemberOutcome.Failed(new JobFailure(FailureCause.NonFiniteLoss, $"loss {losses[k]}; {session.NonFiniteAdvice(k)}", step)));
                leaving.Add(k);
                continue;
            }
            if (epochEnded[k]) _metrics[member] = evaluated![k];
            var samplesPerSecond = (step - _firstStep[member]) * (double)session.SamplesPerStep / Math.Max(1e-9, (_clock.Elapsed - _evaluating.Elapsed).TotalSeconds);
            if (report && session.Reports)
                member.Post(new JobProgress(step, session.TotalSteps(k), session.TrainingEpoch(k), losses[k], _metrics.GetValueOrDefault(member)?.Accuracy, samplesPerSecond, DateTime.UtcNow));
            if (session.Done(k))
            {
                member.End(session.Reports ? MemberOutcome.Succeeded(Result(k, losses[k], samplesPerSecond)) : MemberOutcome.Stopped("finished; rank 0 reports the result"));
                leaving.Add(k);
            }
            else if (session.Reports && step % checkpointEvery == 0)
                member.Post(new JobCheckpoint(step, session.Checkpoint(k), DateTime.UtcNow));
        }
        if (leaving.Count > 0) session.Leave(leaving);
    }

    JobResult Result(int member, float loss, double samplesPerSecond)
    {
        var metrics = _metrics[session.Members[member]]; // a member that is done has just ended a training epoch
        return session.Finish(member, new JobResult(metrics.Accuracy, loss, session.Step(member), session.CompletedTrainingEpochs(member), _clock.Elapsed.TotalSeconds,
            samplesPerSecond, Auc: metrics.Auc, LogLoss: metrics.LogLoss, LongestStepSeconds: _longestStep));
    }
}
