using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Orchestrator.Silo;

/// <summary>
/// Bounds a silo's shutdown. Orleans leaves the cluster gracefully by writing to the membership table; with the
/// state store down those writes are retried for minutes after SIGTERM (measured: more than 90 s), longer than any
/// orchestrator waits (Kubernetes kills after 30 s). The host gets <see cref="Graceful"/> to stop; past
/// <see cref="Limit"/> the process exits with code 1 (the others declare it dead, as after a crash).
/// </summary>
public sealed partial class ShutdownDeadline(IHostApplicationLifetime lifetime, ILogger<ShutdownDeadline> log) : IHostedService
{
    public static readonly TimeSpan Graceful = TimeSpan.FromSeconds(15);
    public static readonly TimeSpan Limit = TimeSpan.FromSeconds(20);

    public static void AddTo(IServiceCollection services)
    {
        services.Configure<HostOptions>(o => o.ShutdownTimeout = Graceful);
        services.AddHostedService<ShutdownDeadline>();
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStopping.Register(() => _ = Task.Delay(Limit).ContinueWith(_ =>
        {
            Overdue(log, Limit.TotalSeconds);
            Console.Out.Flush();
            Console.Error.Flush();
            // Not Environment.Exit: its exit handlers wait for the very host that does not finish stopping.
            ExitNow(1);
        }, TaskScheduler.Default));
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [DllImport("libc", EntryPoint = "_exit")]
    static extern void ExitNow(int status);

    [LoggerMessage(701, LogLevel.Error, "The silo did not stop within {Seconds} s of the shutdown request (is the state store reachable?); exiting now")]
    static partial void Overdue(ILogger logger, double seconds);
}
