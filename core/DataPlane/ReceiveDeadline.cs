namespace Orchestrator.Core.DataPlane;

/// <summary>
/// How long a rank waits for a peer's frame before reporting it: a multiple of the measured step time, so a
/// frozen peer becomes a membership change within seconds (not the 30-minute hang of a stuck NCCL call), while a
/// peer that is merely busy between steps (evaluation, a control-plane call) is given ample time. Before any step
/// was measured (connecting, warming up) the wait is <see cref="Initial"/>.
/// </summary>
public sealed class ReceiveDeadline(TimeSpan initial, TimeSpan minimum, TimeSpan maximum, double stepsOfSlack = 20)
{
    public static ReceiveDeadline Default() => new(TimeSpan.FromSeconds(15), TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(60));

    const double Smoothing = 0.1;
    double _stepSeconds = -1;

    public TimeSpan Initial => initial;

    /// <summary>The smoothed step time, or null before the first measurement.</summary>
    public TimeSpan? StepTime => _stepSeconds < 0 ? null : TimeSpan.FromSeconds(_stepSeconds);

    public TimeSpan Current => _stepSeconds < 0
        ? initial
        : TimeSpan.FromSeconds(Math.Clamp(stepsOfSlack * _stepSeconds, minimum.TotalSeconds, maximum.TotalSeconds));

    public void Observe(TimeSpan step) =>
        _stepSeconds = _stepSeconds < 0 ? step.TotalSeconds : (1 - Smoothing) * _stepSeconds + Smoothing * step.TotalSeconds;
}
