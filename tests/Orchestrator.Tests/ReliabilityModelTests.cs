using Orchestrator.Core.Reliability;

namespace Orchestrator.Tests;

/// <summary>The reliability model reproduces the Meta study's projections and Young's and Daly's published intervals.</summary>
public class ReliabilityModelTests
{
    const double Rsc1 = ReliabilityModel.Rsc1PerThousandNodeDays / 1000, Rsc2 = ReliabilityModel.Rsc2PerThousandNodeDays / 1000;

    [Theory]
    [InlineData(16_384, 1.80)]
    [InlineData(131_072, 0.225)]
    public void JobMttf_MatchesTheStudysProjections(int gpus, double hours) =>
        Assert.Equal(hours, ReliabilityModel.JobMttf(gpus / ReliabilityModel.GpusPerNode, Rsc1).TotalHours, tolerance: 0.005);

    [Theory]
    [InlineData(60, 0.676)]
    [InlineData(5, 0.931)]
    public void ExpectedEttr_OfA16kGpuJob_MatchesTheStudy(int intervalMinutes, double ettr) =>
        Assert.Equal(ettr, ReliabilityModel.ExpectedEttr(2048, Rsc1, TimeSpan.FromMinutes(intervalMinutes), TimeSpan.Zero, TimeSpan.FromMinutes(5)), 3);

    [Fact]
    public void ExpectedEttr_FallsWithNodesRateAndRestart_AndPeaksNearTheOptimalInterval()
    {
        TimeSpan Minutes(double m) => TimeSpan.FromMinutes(m);
        var baseline = ReliabilityModel.ExpectedEttr(2048, Rsc2, Minutes(30), Minutes(1), Minutes(5));

        Assert.True(ReliabilityModel.ExpectedEttr(4096, Rsc2, Minutes(30), Minutes(1), Minutes(5)) < baseline);
        Assert.True(ReliabilityModel.ExpectedEttr(2048, Rsc1, Minutes(30), Minutes(1), Minutes(5)) < baseline);
        Assert.True(ReliabilityModel.ExpectedEttr(2048, Rsc2, Minutes(30), Minutes(1), Minutes(15)) < baseline);
        // With w > 0 the interval that maximizes E[ETTR] is near √(2w/(N·r_f)).
        var optimum = Math.Sqrt(2 * 1.0 / (2048 * Rsc2 / (24 * 60)));
        var best = Enumerable.Range(1, 600).MaxBy(m => ReliabilityModel.ExpectedEttr(2048, Rsc2, Minutes(m), Minutes(1), Minutes(5)));
        Assert.InRange(best, optimum * 0.9, optimum * 1.1);
    }

    [Fact]
    public void ErasureCodedRecovery_LosesNoWork_SoItsEttrIsOnlyTheRebuildTime()
    {
        var ettr = ReliabilityModel.ExpectedEttrErasureCoded(2048, Rsc1, TimeSpan.FromSeconds(30));
        Assert.Equal(1 - 2048 * Rsc1 / (24 * 60) * 0.5, ettr, 12);
        Assert.True(ettr > ReliabilityModel.ExpectedEttr(2048, Rsc1, TimeSpan.FromMinutes(5), TimeSpan.Zero, TimeSpan.FromSeconds(30)));
    }

    [Theory]
    [InlineData(24 * 60, 117)]
    [InlineData(6 * 60, 57)]
    [InlineData(15, 9.1)]
    public void DalyInterval_ReproducesHisPublishedCases(double mtbfMinutes, double expectedMinutes) =>
        Assert.Equal(expectedMinutes, ReliabilityModel.DalyInterval(TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(mtbfMinutes)).TotalMinutes, expectedMinutes < 10 ? 1 : 0);

    [Fact]
    public void YoungInterval_IsTheSquareRootRule_AndDalyFallsBackToMWhenCheckpointsCostTooMuch()
    {
        Assert.Equal(Math.Sqrt(2 * 5 * 1440), ReliabilityModel.YoungInterval(TimeSpan.FromMinutes(5), TimeSpan.FromHours(24)).TotalMinutes, 9);
        Assert.Equal(TimeSpan.FromMinutes(2), ReliabilityModel.DalyInterval(TimeSpan.FromMinutes(5), TimeSpan.FromMinutes(2)));
    }

    [Theory]
    [InlineData("rank(s) 0 sent non-finite gradients for 5 steps in a row", FailureCategory.UserError)]
    [InlineData("invalid job spec: train.lr: must be positive", FailureCategory.UserError)]
    [InlineData("InvalidOperationException: 2 shards of the group are lost; the code tolerates 1", FailureCategory.SiloCrash)]
    [InlineData("OutOfMemoryException: CUDA out of memory", FailureCategory.OutOfMemory)]
    [InlineData("the state store did not answer IJobGrain.ReportProgress", FailureCategory.StateStoreOutage)]
    [InlineData("rank 1: nothing from rank 0 for step 400 within 3 s", FailureCategory.NetworkTimeout)]
    [InlineData("IndexOutOfRangeException: Index was outside the bounds of the array.", FailureCategory.WorkerCrash)]
    public void AFailuresCause_IsSortedIntoTheTaxonomy(string cause, FailureCategory expected) =>
        Assert.Equal(expected, FailureTaxonomy.Classify(cause));
}
