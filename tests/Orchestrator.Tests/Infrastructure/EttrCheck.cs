using System.Text.Json;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>
/// A job's time per phase summed straight from its time line as written in JSON (the API's and the chaos report's),
/// to check the ETTR the cluster reports: W = queueing + starting + detection + pauses + training, and the steps
/// trained again after resuming behind the highest step reached.
/// </summary>
public sealed record EttrCheck(double Wall, double Queueing, double Starting, double Detection, double Paused, double Training, long LostSteps)
{
    public static EttrCheck FromMarks(JsonElement marks)
    {
        var list = marks.EnumerateArray().Select(m => (At: m.GetProperty("at").GetDateTime(), Phase: m.GetProperty("phase").GetString()!, Step: m.GetProperty("step").GetInt64()))
            .OrderBy(m => m.At).ToList();
        Assert.Equal("Ended", list[^1].Phase);
        var seconds = new Dictionary<string, double>();
        long highest = 0, lost = 0;
        for (int i = 0; i + 1 < list.Count; i++)
        {
            seconds[list[i].Phase] = seconds.GetValueOrDefault(list[i].Phase) + (list[i + 1].At - list[i].At).TotalSeconds;
            if (list[i].Phase == "Training" && list[i].Step < highest) lost += highest - list[i].Step;
            highest = Math.Max(highest, list[i + 1].Step);
        }
        return new EttrCheck((list[^1].At - list[0].At).TotalSeconds, seconds.GetValueOrDefault("Queued"), seconds.GetValueOrDefault("Starting"),
            seconds.GetValueOrDefault("Stalled"), seconds.GetValueOrDefault("Paused"), seconds.GetValueOrDefault("Training"), lost);
    }

    /// <summary>Asserts that a reported job time (JobTime as JSON) is this split, and returns its ETTR.</summary>
    public double AssertMatches(JsonElement time, string job)
    {
        void Same(double expected, string field) =>
            Assert.True(Math.Abs(expected - time.GetProperty(field).GetDouble()) < 1e-6, $"{job}: {field} {time.GetProperty(field).GetDouble()}, from its marks {expected}");
        Same(Wall, "wallSeconds");
        Same(Queueing, "queueingSeconds");
        Same(Starting, "startingSeconds");
        Same(Detection, "detectionSeconds");
        Same(Paused, "recoverySeconds");
        Assert.True(Math.Abs(Training - time.GetProperty("productiveSeconds").GetDouble() - time.GetProperty("lostProgressSeconds").GetDouble()) < 1e-6,
            $"{job}: productive + lost progress is not the training time {Training}");
        Assert.Equal(LostSteps, time.GetProperty("lostSteps").GetInt64());
        var ettr = time.GetProperty("ettr").GetDouble();
        Assert.True(Math.Abs(time.GetProperty("productiveSeconds").GetDouble() / Wall - ettr) < 1e-9, $"{job}: ETTR {ettr} is not productive / wall");
        return ettr;
    }
}
