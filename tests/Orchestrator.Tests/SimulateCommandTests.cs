namespace Orchestrator.Tests;

/// <summary>`orch simulate` as a user runs it: a small scenario end to end, and a bad one refused with its field named.</summary>
public class SimulateCommandTests
{
    [Fact]
    public async Task ASmallScenario_PrintsCostOutcomesAndTheBigJobCheck()
    {
        var folder = Directory.CreateTempSubdirectory("sim").FullName;
        var scenario = Path.Combine(folder, "small.yaml");
        await File.WriteAllTextAsync(scenario, """
            name: small
            seed: 2
            devices: 256
            days: 0.5
            workload: {jobsPerHour: 40, smallFraction: 0.9, largeSizes: [16, 64], largeWeights: [0.5, 0.5], largeMedianHours: 2}
            failures: {perThousandNodeDays: 100}
            schedulerCost: {devices: [1000], queued: [1000]}
            bigJobCheck: {devices: 256, days: 2, intervalMinutes: [30]}
            """);
        var events = Path.Combine(folder, "events.csv");
        using var run = ChildProcess.Dotnet("orch-simulate", Repo.Cli, "simulate", scenario, "--events", events);

        Assert.Equal(0, await run.WaitForExit(TimeSpan.FromSeconds(120)));
        Assert.Contains("decisions / s", run.Output);
        Assert.Contains("fusion off, checkpoint-restart", run.Output);
        Assert.Contains("erasure-coded", run.Output);
        Assert.Contains("simulated ETTR", run.Output);
        Assert.StartsWith("seconds,event,subject,version", File.ReadLines(events).First());
        Assert.True(File.ReadLines(events).Count() > 100);
    }

    [Fact]
    public async Task ABadScenario_IsRefusedNamingTheField()
    {
        var scenario = Path.Combine(Directory.CreateTempSubdirectory("sim").FullName, "bad.yaml");
        await File.WriteAllTextAsync(scenario, "devices: 4\nworkload: {smallFraction: 2}\n");
        using var run = ChildProcess.Dotnet("orch-simulate", Repo.Cli, "simulate", scenario);

        Assert.Equal(2, await run.WaitForExit(TimeSpan.FromSeconds(60)));
        Assert.Contains("devices: 4", run.Output);
        Assert.Contains("workload.smallFraction: 2", run.Output);
    }
}
