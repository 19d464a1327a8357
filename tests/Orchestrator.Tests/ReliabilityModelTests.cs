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
    [InlineData(FailureCause.NonFiniteGradients, FailureCategory.UserError)]
    [InlineData(FailureCause.NonFiniteLoss, FailureCategory.UserError)]
    [InlineData(FailureCause.InvalidSpec, FailureCategory.UserError)]
    [InlineData(FailureCause.InvalidData, FailureCategory.UserError)]
    [InlineData(FailureCause.EmbeddingLost, FailureCategory.SiloCrash)]
    [InlineData(FailureCause.OutOfMemory, FailureCategory.OutOfMemory)]
    [InlineData(FailureCause.WorkerError, FailureCategory.WorkerCrash)]
    public void AFailuresCause_IsSortedIntoTheTaxonomy(FailureCause cause, FailureCategory expected)
    {
        Assert.Equal(expected, FailureTaxonomy.CategoryOf(cause));
        Assert.Equal(expected == FailureCategory.UserError, FailureTaxonomy.IsJobsOwn(cause));
    }

    [Theory]
    [InlineData(PeerFailure.Silent, FailureCategory.NetworkTimeout)]
    [InlineData(PeerFailure.ConnectionLost, FailureCategory.WorkerCrash)]
    [InlineData(PeerFailure.Unreachable, FailureCategory.WorkerCrash)]
    [InlineData(PeerFailure.BadFrame, FailureCategory.WorkerCrash)]
    public void APeerFailure_IsSortedIntoTheTaxonomy(PeerFailure failure, FailureCategory expected) =>
        Assert.Equal(expected, FailureTaxonomy.CategoryOf(failure));
}
