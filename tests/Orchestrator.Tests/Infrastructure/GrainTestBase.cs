using Orleans.TestingHost;

namespace Orchestrator.Tests.Infrastructure;

/// <summary>Grain tests on their own two-silo in-process cluster each (nodes and queues of one test never serve another), with
/// helpers that act as nodes and workers would.</summary>
public abstract class GrainTestBase : IAsyncLifetime
{
    readonly ClusterFixture _fixture = new();
    protected IGrainFactory Grains { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        await _fixture.InitializeAsync();
        Grains = _fixture.Grains;
    }

    public Task DisposeAsync() => _fixture.DisposeAsync();

    protected static string SpecJson(string name, int priority = 0, string fusion = "auto") => JobSpecJson.Write(JobSpecParser.Parse(
        $"name: {name}\npriority: {priority}\nfusion: {fusion}\nmodel: {{type: mlp}}\ndata: {{dataset: fashion-mnist}}\ntrain: {{steps: 100}}",
        new SpecValidationOptions { CheckFiles = false }));

    /// <summary>A reference to a checkpoint of the job at <paramref name="step"/> (the grain keeps references only).</summary>
    protected static CheckpointRef Checkpoint(string jobId, long step) =>
        new(step, $"{jobId}/{step:D12}-{new string('a', 64)}.ckpt", 3, new string('a', 64), DateTime.UtcNow);

    protected static string NewId(string prefix) => $"{prefix}-{Guid.NewGuid():n}"[..20];

    protected async Task<JobInfo> Submit(string id, int priority = 0, string fusion = "auto", bool defer = false) =>
        await Grains.GetGrain<IJobGrain>(id).Submit(new JobSubmission(SpecJson("j", priority, fusion), "test", defer));

    /// <summary>Submits jobs without queueing them (as the CLI does for a sweep) and returns their queue entries.</summary>
    protected async Task<List<QueuedJob>> SubmitDeferred(IEnumerable<string> ids)
    {
        var entries = new List<QueuedJob>();
        foreach (var id in ids)
        {
            await Submit(id, defer: true);
            entries.Add((await Grains.GetGrain<IJobGrain>(id).GetQueueEntry())!);
        }
        return entries;
    }

    protected Task<NodeDirective> Heartbeat(string node, params string[] devices) =>
        Grains.GetGrain<INodeGrain>(node).Heartbeat(new NodeReport("inc-1", devices, 1 << 30, [], "host", 1));

    /// <summary>Keeps a node alive (heartbeats every 300 ms) until disposed.</summary>
    protected IAsyncDisposable KeepAlive(string node, params string[] devices)
    {
        var cts = new CancellationTokenSource();
        var loop = Task.Run(async () =>
        {
            while (!cts.IsCancellationRequested)
            {
                await Heartbeat(node, devices);
                try { await Task.Delay(300, cts.Token); } catch (OperationCanceledException) { }
            }
        });
        return new Stopper(cts, loop);
    }

    sealed class Stopper(CancellationTokenSource cts, Task loop) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            cts.Cancel();
            await loop;
        }
    }

    /// <summary>Heartbeats until the node's desired state satisfies the condition (it follows the job's by a moment).</summary>
    protected async Task<NodeDirective> WaitForDirective(string node, Func<NodeDirective, bool> condition, params string[] devices)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        NodeDirective directive;
        do
        {
            directive = await Heartbeat(node, devices);
            if (condition(directive)) return directive;
            await Task.Delay(50);
        } while (DateTime.UtcNow < deadline);
        return directive;
    }

    protected async Task<JobInfo> WaitFor(string id, Func<JobInfo, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        JobInfo info;
        do
        {
            info = await Grains.GetGrain<IJobGrain>(id).GetInfo();
            if (condition(info)) return info;
            await Task.Delay(50);
        } while (DateTime.UtcNow < deadline);
        // What the scheduler and the job saw, so that a failure says why.
        var scheduler = await Grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).GetInfo();
        var nodes = await Task.WhenAll(scheduler.Nodes.Select(n => Grains.GetGrain<INodeGrain>(n).GetInfo()));
        var events = await Grains.GetGrain<IJobGrain>(id).GetEvents();
        throw new TimeoutException($"job {id} never became {what}; last state {info.State}. Scheduler queue: {string.Join(", ", scheduler.Queue.Select(q => $"{q.JobId} p{q.Priority}"))}; " +
            $"nodes: {string.Join(", ", nodes.Select(n => $"{n.NodeId} {n.Health} heartbeat {n.LastHeartbeat:HH:mm:ss.fff} assignments {n.Assignments.Count}"))}; placements made {scheduler.PlacementsMade}; " +
            $"now {DateTime.UtcNow:HH:mm:ss.fff}; job events: {string.Join(" | ", events.Select(e => $"{e.At:HH:mm:ss.fff} {e.Source}: {e.Message}"))}");
    }

    protected async Task<Incident> WaitForIncident(Func<Incident, bool> match)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            if ((await Grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).List(1000)).FirstOrDefault(match) is { } found) return found;
            if (DateTime.UtcNow > deadline) throw new TimeoutException("the incident was not recorded");
            await Task.Delay(100);
        }
    }
}
