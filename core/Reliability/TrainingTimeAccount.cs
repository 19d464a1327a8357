namespace Orchestrator.Core.Reliability;

/// <summary>
/// What a job is doing over an interval of its life, for the study's time accounting: waiting for devices (queued),
/// starting on them (placed; loading data, a checkpoint, forming a gang), training, stalled (its last progress was
/// at this mark's time and the cluster had not yet noticed the failure), paused (a data-parallel gang re-forming
/// after a membership change), ended.
/// </summary>
public enum RunPhase { Queued, Starting, Training, Stalled, Paused, Ended }

/// <summary>From <see cref="At"/> the job is in <see cref="Phase"/>. <see cref="Step"/>: for Training, the step it
/// trains from (a resume from a checkpoint may be behind steps already reached); otherwise the step reached.</summary>
public readonly record struct PhaseMark(DateTime At, RunPhase Phase, long Step);

/// <summary>
/// A job's wall time W = Q + R + U split as the study does: queueing Q, productive training R, and unproductive
/// time U = starting + detection + recovery pauses + lost progress (training time whose steps were later redone).
/// </summary>
public sealed record TimeAccount(TimeSpan Wall, TimeSpan Productive, TimeSpan Queueing, TimeSpan Starting, TimeSpan Detection,
    TimeSpan Recovery, TimeSpan LostProgress, long LostSteps)
{
    /// <summary>ETTR: productive training time over wall time (0 for a job with no wall time yet).</summary>
    public double Ettr => Wall > TimeSpan.Zero ? Productive / Wall : 0;

    public TimeSpan Unproductive => Starting + Detection + Recovery + LostProgress;
}

public static class TrainingTimeAccounting
{
    /// <summary>
    /// Accounts a job's phase marks up to its Ended mark, or up to <paramref name="now"/> (at step
    /// <paramref name="currentStep"/>) while it runs. Lost progress: when training resumes from a step behind the
    /// highest step reached, the steps in between cost the job's mean training time per step (at most the training
    /// time not yet counted lost).
    /// </summary>
    public static TimeAccount Account(IEnumerable<PhaseMark> marks, DateTime now, long currentStep)
    {
        var ordered = marks.OrderBy(m => m.At).ToList(); // stable: marks of the same instant keep their order
        if (ordered.Count == 0) return new(TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, 0);
        TimeSpan queueing = default, starting = default, detection = default, recovery = default, training = default, lost = default;
        long advanced = 0, highest = 0, lostSteps = 0;
        var end = now;
        for (int i = 0; i < ordered.Count; i++)
        {
            var mark = ordered[i];
            if (mark.Phase == RunPhase.Ended)
            {
                end = mark.At;
                highest = Math.Max(highest, mark.Step);
                break;
            }
            var (until, stepThen) = i + 1 < ordered.Count ? (ordered[i + 1].At, ordered[i + 1].Step) : (now, currentStep);
            var span = until - mark.At;
            switch (mark.Phase)
            {
                case RunPhase.Queued: queueing += span; break;
                case RunPhase.Starting: starting += span; break;
                case RunPhase.Stalled: detection += span; break;
                case RunPhase.Paused: recovery += span; break;
                case RunPhase.Training:
                    if (mark.Step < highest && advanced > 0)
                    {
                        var redo = highest - mark.Step;
                        lostSteps += redo;
                        var perStep = training / advanced;
                        lost += Min(perStep * redo, training - lost);
                    }
                    training += span;
                    var next = i + 1 < ordered.Count && ordered[i + 1].Phase == RunPhase.Training ? ordered[i + 1].Step : stepThen;
                    advanced += Math.Max(0, next - mark.Step);
                    highest = Math.Max(highest, next);
                    break;
            }
        }
        var wall = end - ordered[0].At;
        return new(wall, training - lost, queueing, starting, detection, recovery, lost, lostSteps);
    }

    static TimeSpan Min(TimeSpan a, TimeSpan b) => a < b ? a : b;
}

/// <summary>What one failure cost a job: how long until it trained again, and how many steps it redid.</summary>
public sealed record IncidentImpact(TimeSpan? Recovery, long LostSteps)
{
    /// <summary>
    /// From the job's phase marks: recovery runs from <paramref name="failedAt"/> to the first Training mark after it
    /// (null while the job has not trained again); lost steps are the highest step reached before it minus the
    /// step training resumed from.
    /// </summary>
    public static IncidentImpact Of(DateTime failedAt, IEnumerable<PhaseMark> marks)
    {
        long highest = 0;
        foreach (var m in marks.OrderBy(m => m.At))
        {
            if (m.At > failedAt && m.Phase == RunPhase.Training) return new(m.At - failedAt, Math.Max(0, highest - m.Step));
            if (m.At > failedAt && m.Phase == RunPhase.Ended) break;
            highest = Math.Max(highest, m.Step);
        }
        return new(null, 0);
    }
}
