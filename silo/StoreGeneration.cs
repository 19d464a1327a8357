using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Orchestrator.Contracts;
using Orchestrator.Grains;
using StackExchange.Redis;

namespace Orchestrator.Silo;

/// <summary>
/// Notices that the state store lost its data. The first silo writes a generation marker (a random id) into Redis;
/// every silo remembers it and reads it back every <see cref="Period"/>. A marker that is gone or different means
/// the store was flushed or restarted without persistence (a Redis pod on no volume): every job, checkpoint
/// reference, incident and the membership table went with it. The silo records a StateStoreLost incident and reports
/// not ready (<see cref="Lost"/>), instead of serving an empty cluster as if nothing happened. (A store that does not
/// answer is an outage, not a loss: that is the grain call filter's business.)
/// </summary>
public sealed partial class StoreGeneration(string redis, IGrainFactory grains, ILocalSiloDetails local, ILogger<StoreGeneration> log) : BackgroundService
{
    public const string Key = "orchestrator:generation";
    public static readonly TimeSpan Period = TimeSpan.FromSeconds(2);

    string? _generation;

    /// <summary>When and how the store was found to have lost its data, or null.</summary>
    public (DateTime At, string Generation)? Lost { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var options = ConfigurationOptions.Parse(redis);
        options.AbortOnConnectFail = false;
        using var connection = await ConnectionMultiplexer.ConnectAsync(options);
        var db = connection.GetDatabase();
        using var timer = new PeriodicTimer(Period);
        do
        {
            try
            {
                if (_generation is null)
                {
                    // The first silo's id wins; the others read it.
                    await db.StringSetAsync(Key, Guid.NewGuid().ToString("n"), when: When.NotExists);
                    _generation = await db.StringGetAsync(Key);
                }
                else if (Lost is null && await db.StringGetAsync(Key) is var now && now != _generation)
                {
                    Lost = (DateTime.UtcNow, _generation);
                    StoreLost(log, _generation, now.IsNull ? "gone" : $"now {now}");
                    await grains.GetGrain<IIncidentLogGrain>(SchedulerKeys.Cluster).Append(Incident.StateStoreLost(local.SiloAddress.ToParsableString(), _generation));
                }
            }
            catch (Exception e) when (e is RedisException or TimeoutException or OrleansException)
            {
                // The store does not answer: an outage, which the grain call filter reports; try again next period.
            }
        } while (await Next(timer, stoppingToken));
    }

    static async Task<bool> Next(PeriodicTimer timer, CancellationToken ct)
    {
        try { return await timer.WaitForNextTickAsync(ct); }
        catch (OperationCanceledException) { return false; }
    }

    [LoggerMessage(702, LogLevel.Critical, "The state store lost its data: the cluster's generation marker {Generation} is {Now}. Jobs, checkpoint references, incidents and membership held there are gone; this silo reports not ready")]
    static partial void StoreLost(ILogger logger, string generation, string now);
}
