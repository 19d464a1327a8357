using Microsoft.Extensions.DependencyInjection;
using Orchestrator.Core.Scheduling;

namespace Orchestrator.Grains;

public static class SiloBuilderExtensions
{
    /// <summary>Registers Orchestrator's services on a silo: the scheduling policy, options and the scheduler ticker.</summary>
    public static ISiloBuilder AddOrchestrator(this ISiloBuilder silo, Action<OrchestratorOptions>? configure = null)
    {
        silo.Services.Configure<OrchestratorOptions>(o => configure?.Invoke(o));
        silo.Services.AddSingleton<ISchedulingPolicy>(sp =>
            new PriorityBestFitPolicy(sp.GetRequiredService<Microsoft.Extensions.Options.IOptions<OrchestratorOptions>>().Value.MaxArrayWidth));
        silo.Services.AddHostedService<SchedulerTicker>();
        silo.Services.AddPlacementDirector<CodingGroupPlacement, CodingGroupPlacementDirector>();
        return silo;
    }
}
