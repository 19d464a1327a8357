using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Orchestrator.Grains;

/// <summary>
/// Runs in every silo and asks the scheduler for a pass each period. Because every silo does it, the scheduler
/// is reactivated on a survivor within one period after its silo dies.
/// </summary>
public sealed class SchedulerTicker(IGrainFactory grains, IOptions<OrchestratorOptions> options, ILogger<SchedulerTicker> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.SchedulerTickPeriod);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try { await grains.GetGrain<ISchedulerGrain>(SchedulerKeys.Cluster).Tick(); }
            catch (Exception e) when (!stoppingToken.IsCancellationRequested)
            {
                logger.SchedulerTickFailed(e);
            }
        }
    }
}
