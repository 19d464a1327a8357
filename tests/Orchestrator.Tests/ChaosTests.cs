using System.Text.Json;
using Orchestrator.Cli;
using Orchestrator.Cli.Chaos;

namespace Orchestrator.Tests;

/// <summary>Failure injection through the cluster: refused unless allowed; a worker's fault rides one heartbeat reply.</summary>
public class ChaosGrainTests
{
    [Fact]
    public async Task EveryChaosCommand_IsRefused_WithTheReason_UnlessTheSilosAllowChaos()
    {
        var fixture = new ClusterFixture(allowChaos: false);
        await fixture.InitializeAsync();
        try
        {
            var chaos = fixture.Grains.GetGrain<IChaosGrain>("cluster");
            var silo = (await fixture.Grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Keys.First().ToParsableString();
            var refusals = new[]
            {
                await Assert.ThrowsAsync<ChaosDisabledException>(() => chaos.KillSilo(null)),
                await Assert.ThrowsAsync<ChaosDisabledException>(() => chaos.FaultNode("w1", new NodeFault(FaultKind.KillWorker))),
                await Assert.ThrowsAsync<ChaosDisabledException>(() => chaos.NanGradients("job", 0, 3)),
                // The entry points behind the chaos grain, called directly (the original bypass: InjectFault had no check).
                await Assert.ThrowsAsync<ChaosDisabledException>(() => fixture.Grains.GetGrain<INodeGrain>("w1").InjectFault(new NodeFault(FaultKind.HangWorker, Seconds: 5))),
                await Assert.ThrowsAsync<ChaosDisabledException>(() => fixture.Grains.GetGrain<ISiloChaosGrain>(silo).Crash()),
            };
            Assert.All(refusals, e => Assert.Contains("--allow-chaos", e.Message));
            Assert.Equal(2, (await fixture.Grains.GetGrain<IManagementGrain>(0).GetHosts(onlyActive: true)).Count); // nothing was killed
        }
        finally { await fixture.DisposeAsync(); }
    }

    [Fact]
    public async Task ANodeFault_TravelsWithTheNextHeartbeatReply_ExactlyOnce()
    {
        var fixture = new ClusterFixture(allowChaos: true);
        await fixture.InitializeAsync();
        try
        {
            var node = fixture.Grains.GetGrain<INodeGrain>("n1");
            var report = new NodeReport("inc-1", ["cpu:0"], 1 << 30, [], "host", 1);
            Assert.Empty((await node.Heartbeat(report)).Faults ?? []);
            var chaos = fixture.Grains.GetGrain<IChaosGrain>("cluster");

            var result = await chaos.FaultNode("n1", new NodeFault(FaultKind.SlowNode, Seconds: 5, DelayMs: 200));

            Assert.Equal("n1", result.Target);
            Assert.Equal([new NodeFault(FaultKind.SlowNode, Seconds: 5, DelayMs: 200)], (await node.Heartbeat(report)).Faults);
            Assert.Empty((await node.Heartbeat(report)).Faults ?? []);
            await Assert.ThrowsAsync<ArgumentException>(() => chaos.FaultNode("no-such-node", new NodeFault(FaultKind.KillWorker)));
            await Assert.ThrowsAsync<ArgumentException>(() => chaos.KillSilo("127.0.0.1:1@1"));
        }
        finally { await fixture.DisposeAsync(); }
    }
}

/// <summary>Fault values are checked on the silo and again on the worker, which applies faults only if it allows chaos.</summary>
public class ChaosFaultValidationTests
{
    /// <summary>Each fault is out of range in the field named beside it; none may reach a worker.</summary>
    public static TheoryData<NodeFault, string> InvalidFaults => new()
    {
        { new NodeFault(FaultKind.HangWorker, Seconds: double.PositiveInfinity), "Seconds" }, // froze a worker for good
        { new NodeFault(FaultKind.HangWorker, Seconds: double.NaN), "Seconds" },
        { new NodeFault(FaultKind.SlowNode, Seconds: 3601, DelayMs: 10), "Seconds" },
        { new NodeFault(FaultKind.SlowNode, Seconds: 5, DelayMs: -1), "DelayMs" },
        { new NodeFault(FaultKind.SlowNode, Seconds: 5, DelayMs: 1e9), "DelayMs" },
        { new NodeFault(FaultKind.DropCalls, Seconds: 5, Rate: 1.5), "Rate" },
        { new NodeFault(FaultKind.DropCalls, Seconds: 5, Rate: 0), "Rate" },
        { new NodeFault(FaultKind.NanGradients, Steps: 3), "JobId" }, // stopped a whole orch up host
        { new NodeFault(FaultKind.NanGradients, JobId: "j", Steps: 0), "Steps" },
        { new NodeFault(FaultKind.NanGradients, JobId: "j", Steps: int.MaxValue), "Steps" },
        { new NodeFault((FaultKind)99), "Kind" },
    };

    [Theory, MemberData(nameof(InvalidFaults))]
    public void AnInvalidFault_IsRefused_NamingItsField(NodeFault fault, string field)
    {
        var e = Assert.Throws<ArgumentException>(fault.Validate);
        Assert.Equal(field, e.ParamName);
        Assert.Contains($"fault.{field}", e.Message);
    }

    [Theory, MemberData(nameof(InvalidFaults))]
    public void AWorker_IgnoresAnInvalidFault_WithoutThrowing(NodeFault fault, string field)
    {
        _ = field;
        var chaos = Worker(allowChaos: true);
        Assert.False(chaos.Apply(fault));
        Assert.False(chaos.TakePoison("j"));
    }

    [Fact]
    public void AWorker_NotStartedWithAllowChaos_IgnoresEveryFault()
    {
        var refusing = Worker(allowChaos: false);
        Assert.False(refusing.Apply(new NodeFault(FaultKind.NanGradients, JobId: "j", Steps: 2)));
        Assert.False(refusing.TakePoison("j"));

        var allowing = Worker(allowChaos: true);
        Assert.True(allowing.Apply(new NodeFault(FaultKind.NanGradients, JobId: "j", Steps: 2)));
        Assert.Equal([true, true, false], [allowing.TakePoison("j"), allowing.TakePoison("j"), allowing.TakePoison("j")]);
    }

    static Orchestrator.Worker.WorkerChaos Worker(bool allowChaos) => new(
        new Orchestrator.Worker.NodeAgentOptions("n1", ["cpu:0"]) { AllowChaos = allowChaos },
        Microsoft.Extensions.Logging.Abstractions.NullLogger<Orchestrator.Worker.WorkerChaos>.Instance);

    [Fact]
    public async Task TheSilo_RefusesAnInvalidFault_AndQueuesNothing()
    {
        var fixture = new ClusterFixture(allowChaos: true);
        await fixture.InitializeAsync();
        try
        {
            var node = fixture.Grains.GetGrain<INodeGrain>("n1");
            var report = new NodeReport("inc-1", ["cpu:0"], 1 << 30, [], "host", 1);
            await node.Heartbeat(report);
            var chaos = fixture.Grains.GetGrain<IChaosGrain>("cluster");
            foreach (var (fault, field) in InvalidFaults.Select(row => ((NodeFault)row[0], (string)row[1])))
            {
                // (Orleans carries an exception's message across, not its ParamName.)
                Assert.Contains($"fault.{field}:", (await Assert.ThrowsAsync<ArgumentException>(() => chaos.FaultNode("n1", fault))).Message);
                Assert.Contains($"fault.{field}:", (await Assert.ThrowsAsync<ArgumentException>(() => node.InjectFault(fault))).Message);
            }
            await Assert.ThrowsAsync<ArgumentException>(() => chaos.NanGradients("no-such-job", 0, -4));
            Assert.Empty((await node.Heartbeat(report)).Faults ?? []);
        }
        finally { await fixture.DisposeAsync(); }
    }

    /// <summary>A real node agent heartbeating to the cluster: the fault reaches it and it keeps heartbeating, applying
    /// the fault only when it allows chaos.</summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ANodeAgent_KeepsHeartbeating_AndAppliesAFault_OnlyIfItAllowsChaos(bool allowChaos)
    {
        var fixture = new ClusterFixture(allowChaos: true);
        await fixture.InitializeAsync();
        using var stop = new CancellationTokenSource();
        try
        {
            var options = new Orchestrator.Worker.NodeAgentOptions("agent", ["cpu:0"]) { AllowChaos = allowChaos, HeartbeatPeriod = TimeSpan.FromMilliseconds(200) };
            var chaos = new Orchestrator.Worker.WorkerChaos(options, Microsoft.Extensions.Logging.Abstractions.NullLogger<Orchestrator.Worker.WorkerChaos>.Instance);
            var agent = new Orchestrator.Worker.NodeAgent(fixture.Grains, options, new Orchestrator.Core.Checkpoints.FileCheckpointStore(Directory.CreateTempSubdirectory("ckpt").FullName), chaos, Microsoft.Extensions.Logging.Abstractions.NullLogger<Orchestrator.Worker.NodeAgent>.Instance);
            var running = agent.RunAsync(stop.Token);
            var node = fixture.Grains.GetGrain<INodeGrain>("agent");
            await Until(async () => (await node.GetInfo()).LastHeartbeat is not null, "the agent's first heartbeat");

            await fixture.Grains.GetGrain<IChaosGrain>("cluster").FaultNode("agent", new NodeFault(FaultKind.NanGradients, JobId: "j", Steps: 1));
            var injected = DateTime.UtcNow;
            await Until(async () => (await node.GetInfo()).LastHeartbeat > injected.AddSeconds(1), "heartbeats a second after the fault");

            Assert.False(running.IsCompleted, running.Exception?.ToString());
            Assert.Equal(allowChaos, chaos.TakePoison("j"));
        }
        finally
        {
            await stop.CancelAsync();
            await fixture.DisposeAsync();
        }
    }

    static async Task Until(Func<Task<bool>> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"no {what} within 20 s");
            await Task.Delay(100);
        }
    }
}

/// <summary>Scenario files: validation that names the field, and a random schedule that a seed replays.</summary>
public class ChaosScenarioTests
{
    static string Write(string yaml)
    {
        var path = Path.Combine(Directory.CreateTempSubdirectory("chaos").FullName, "s.yaml");
        File.WriteAllText(path, yaml);
        return path;
    }

    [Theory]
    [InlineData("name: x\njobs: [{file: a.yaml}]\nfaults: [{at: 1, fault: unplug-cable}]", "faults[0].fault")]
    [InlineData("name: x\njobs: []", "jobs")]
    [InlineData("name: x\ncluster: {silos: 0}\njobs: [{file: a.yaml}]", "cluster.silos")]
    [InlineData("name: x\njobs: [{file: a.yaml}]\nrandom: {faults: 3, over: 0}", "random.over")]
    [InlineData("name: x\njobs: [{file: a.yaml}]\nfaults: [{at: 1, fault: nan-gradients, job: 4}]", "faults[0].job")]
    [InlineData("name: x\njobz: []", "line 2")]
    public void AnInvalidScenario_IsRefused_NamingTheField(string yaml, string field)
    {
        var e = Assert.Throws<UsageException>(() => ChaosScenario.Load(Write(yaml)));
        Assert.Contains(field, e.Message);
    }

    [Fact]
    public void TheRandomSchedule_IsReplayedBySeed_AndSortedInTime()
    {
        var scenario = ChaosScenario.Load(Write("name: x\njobs: [{file: a.yaml}]\nrandom: {faults: 10, over: 180, kinds: [kill-silo, hang-worker]}"));

        var first = scenario.Timeline(7).Select(f => (f.At, f.Fault)).ToList();

        Assert.Equal(10, first.Count);
        Assert.Equal(first, scenario.Timeline(7).Select(f => (f.At, f.Fault)));
        Assert.NotEqual(first, scenario.Timeline(8).Select(f => (f.At, f.Fault)));
        Assert.Equal(first.OrderBy(f => f.At), first);
        Assert.All(first, f => Assert.InRange(f.At, 0, 180));
        Assert.Equal(["hang-worker", "kill-silo"], first.Select(f => f.Fault).Distinct().Order());
    }

    [Theory]
    [InlineData("10s", 10)]
    [InlineData("500ms", 0.5)]
    [InlineData("1m", 60)]
    [InlineData("2.5", 2.5)]
    public void Durations_AreRead(string text, double seconds) => Assert.Equal(seconds, ChaosCommands.Seconds(text), 9);

    [Theory]
    [InlineData("ten seconds")]
    [InlineData("-1s")]
    [InlineData("2h")]
    public void BadDurations_AreRefused(string text) => Assert.Throws<UsageException>(() => ChaosCommands.Seconds(text));
}

/// <summary>
/// The shipped scenarios (examples/chaos/), each run by `orch chaos run` as a separate process that starts its own
/// redis-server, silos and workers with --allow-chaos: every invariant must pass.
/// </summary>
[Collection("processes")]
public sealed class ChaosScenarioProcessTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("kill-silo")]
    [InlineData("kill-worker")]
    [InlineData("hang-worker")]
    [InlineData("redis-outage")]
    [InlineData("two-silo-failures")]
    [InlineData("silo-rejoins")]
    [InlineData("nan-gradients")]
    [InlineData("random")]
    public async Task TheScenario_PassesEveryInvariant(string scenario)
    {
        var file = Path.Combine(Repo.Root, "examples", "chaos", $"{scenario}.yaml");
        var timeout = TimeSpan.FromSeconds(ChaosScenario.Load(file).Timeout * 2 + 120);
        var reportFile = Path.Combine(Directory.CreateTempSubdirectory("chaos").FullName, "report.json");
        using var run = ChildProcess.Dotnet($"chaos-{scenario}", Repo.Cli, "chaos", "run", file, "--report", reportFile);

        var exit = await run.WaitForExit(timeout);

        output.WriteLine(run.Output);
        Assert.Contains("PASSED", run.Output);
        Assert.DoesNotContain("FAIL", run.Output);
        Assert.Equal(0, exit);
        // The cluster's own incident log saw the faults, with categories; every job's ETTR is its time line's.
        var report = JsonDocument.Parse(await File.ReadAllTextAsync(reportFile)).RootElement;
        var logged = report.GetProperty("logged").EnumerateArray().Select(v => v.GetProperty("incident").GetProperty("category").GetString()).ToList();
        Assert.NotEmpty(logged);
        Assert.All(logged, c => Assert.True(Enum.TryParse<Orchestrator.Core.Reliability.FailureCategory>(c, out _), $"category {c}"));
        foreach (var job in report.GetProperty("histories").EnumerateArray())
        {
            var id = job.GetProperty("jobId").GetString()!;
            var ettr = EttrCheck.FromMarks(job.GetProperty("history").GetProperty("marks")).AssertMatches(job.GetProperty("time"), id);
            Assert.Contains($"{ettr:F3} (wall", run.Output); // shown in the printed report too
        }
    }
}
