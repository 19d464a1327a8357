using Microsoft.Extensions.Options;

namespace Orchestrator.Tests;

/// <summary>The silo refuses control-plane settings it cannot run with, naming each.</summary>
public sealed class OptionsTests
{
    [Fact]
    public void TheDefaults_AreValid() =>
        Assert.True(new OrchestratorOptionsValidator().Validate(null, new OrchestratorOptions()).Succeeded);

    [Fact]
    public void BadSettings_AreRefused_EachNamed()
    {
        var bad = new OrchestratorOptions
        {
            NodeHeartbeatTimeout = TimeSpan.Zero,
            SchedulerTickPeriod = TimeSpan.FromSeconds(-1),
            RankSilenceLimit = TimeSpan.Zero,
            ShardDirectoryHold = TimeSpan.FromSeconds(-2),
            MaxArrayWidth = 0,
            MaxEventsPerJob = 0,
            MaxCurvePoints = 1,
        };

        var result = new OrchestratorOptionsValidator().Validate(null, bad);

        Assert.True(result.Failed);
        foreach (var field in new[] { "NodeHeartbeatTimeout", "SchedulerTickPeriod", "RankSilenceLimit", "ShardDirectoryHold", "MaxArrayWidth", "MaxEventsPerJob", "MaxCurvePoints" })
            Assert.Contains(result.Failures!, f => f.StartsWith(field, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ASiloWithBadSettings_DoesNotStart()
    {
        var builder = new Orleans.TestingHost.InProcessTestClusterBuilder(1);
        builder.ConfigureSilo((_, silo) =>
        {
            silo.AddMemoryGrainStorage(StorageNames.State);
            silo.AddMemoryGrainStorage(StorageNames.Checkpoints);
            silo.AddOrchestrator(o => o.MaxArrayWidth = 0);
        });
        await using var cluster = builder.Build();

        var e = await Assert.ThrowsAnyAsync<Exception>(() => cluster.DeployAsync());

        Assert.Contains("MaxArrayWidth", e.GetBaseException().Message);
    }
}
