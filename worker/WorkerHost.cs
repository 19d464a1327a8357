using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Orchestrator.Worker;

/// <summary>Wires a <see cref="NodeAgent"/> into a host that has an Orleans client (worker) or a silo (embedded).</summary>
public static class WorkerHost
{
    public static IServiceCollection AddNodeAgent(this IServiceCollection services, NodeAgentOptions options) =>
        services.AddSingleton(options).AddSingleton<WorkerChaos>().AddSingleton<NodeAgent>().AddHostedService<NodeAgentService>()
            .AddSingleton<ICheckpointStore>(_ => new FileCheckpointStore(options.CheckpointDirectory))
            .AddSingleton<CheckpointJanitor>().AddHostedService(sp => sp.GetRequiredService<CheckpointJanitor>());

    sealed class NodeAgentService(NodeAgent agent, ILogger<NodeAgentService> log) : BackgroundService
    {
        protected override async Task ExecuteAsync(CancellationToken stoppingToken)
        {
            try { await agent.RunAsync(stoppingToken); }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                log.AgentStopped(e);
                throw;
            }
        }
    }
}

/// <summary>Keeps trying to reach the cluster at start-up instead of exiting: silos may start after workers.</summary>
public sealed class RetryConnectingFilter(ILogger<RetryConnectingFilter> log) : IClientConnectionRetryFilter
{
    static readonly TimeSpan GiveUpAfter = TimeSpan.FromMinutes(5);
    readonly DateTime _start = DateTime.UtcNow;

    public async Task<bool> ShouldRetryConnectionAttempt(Exception exception, CancellationToken cancellationToken)
    {
        if (DateTime.UtcNow - _start > GiveUpAfter) return false;
        log.NotReachableYet(exception.GetBaseException().Message);
        await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        return true;
    }
}
