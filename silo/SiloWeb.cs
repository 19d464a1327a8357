using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Hosting;
using Orchestrator.Client;
using Orchestrator.Contracts;
using Orchestrator.Grains;
using Orleans.Dashboard;
using Prometheus;

namespace Orchestrator.Silo;

/// <summary>
/// The silo's web host (with --http-port): Orchestrator's pages at /, their read-only JSON API under /api, the
/// Orleans dashboard at /dashboard, Prometheus metrics at /metrics, and /healthz, /readyz for probes.
/// </summary>
public static class SiloWeb
{
    /// <summary>
    /// A silo host: with <paramref name="httpPort"/>, an ASP.NET Core host that also serves the pages, API, dashboard,
    /// metrics and probes (on loopback unless the silo is reachable from elsewhere); without, a plain host.
    /// <paramref name="more"/> adds what else runs in the process (logging, the embedded default's node agent), after
    /// the silo, so that it starts once the silo has.
    /// </summary>
    public static IHost Build(SiloSettings settings, int? httpPort, Action<IHostApplicationBuilder> more)
    {
        if (httpPort is not int port)
        {
            var plain = Host.CreateApplicationBuilder();
            AddProcessServices(plain.Services, settings);
            plain.UseOrleans(settings.Configure);
            more(plain);
            return plain.Build();
        }
        var builder = WebApplication.CreateSlimBuilder();
        AddProcessServices(builder.Services, settings);
        AddServices(builder, settings.ListenAddress, port);
        builder.UseOrleans(silo =>
        {
            settings.Configure(silo);
            silo.AddDashboard();
        });
        more(builder);
        var app = builder.Build();
        Map(app);
        return app;
    }

    /// <summary>What every silo process runs beside the silo: its shutdown deadline and, with Redis, the watch for a
    /// store that lost its data.</summary>
    static void AddProcessServices(IServiceCollection services, SiloSettings settings)
    {
        ShutdownDeadline.AddTo(services);
        if (settings.Redis is not { } redis) return;
        services.AddSingleton(sp => new StoreGeneration(redis, sp.GetRequiredService<IGrainFactory>(), sp.GetRequiredService<ILocalSiloDetails>(),
            sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<StoreGeneration>>()));
        services.AddHostedService(sp => sp.GetRequiredService<StoreGeneration>());
    }

    static void AddServices(WebApplicationBuilder builder, IPAddress listen, int port)
    {
        builder.WebHost.UseKestrel(k => k.Listen(listen, port));
        builder.Services.AddSingleton<ClusterQueries>(sp => new ClusterQueries(sp.GetRequiredService<IGrainFactory>()));
        builder.Services.AddSingleton<ClusterMetrics>();
        builder.Services.ConfigureHttpJsonOptions(o => ApiJson.Configure(o.SerializerOptions));
    }

    static void Map(WebApplication app)
    {
        app.Services.GetRequiredService<ClusterMetrics>(); // registers its scrape-time refresh
        var pages = new PhysicalFileProvider(Path.Combine(AppContext.BaseDirectory, "wwwroot"));
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = pages });
        app.UseStaticFiles(new StaticFileOptions { FileProvider = pages });

        app.MapGet("/healthz", () => Results.Text("ok"));
        app.MapGet("/readyz", (IClusterMembershipService membership, ILocalSiloDetails local, IServiceProvider services) =>
            services.GetService<StoreGeneration>()?.Lost is { } lost
                ? Results.Text($"not ready: the state store lost its data at {lost.At:u} (generation {lost.Generation} gone); restore it and restart the cluster", statusCode: 503)
                : membership.CurrentSnapshot.GetSiloStatus(local.SiloAddress) == SiloStatus.Active
                ? Results.Text("ready")
                : Results.Text($"not ready: this silo is {membership.CurrentSnapshot.GetSiloStatus(local.SiloAddress)} in the cluster", statusCode: 503));
        app.MapOrleansDashboard(routePrefix: "/dashboard");
        app.MapMetrics("/metrics");

        var api = app.MapGroup("/api");
        api.MapGet("/cluster", (ClusterQueries q, IClusterMembershipService membership) => Read(async () => new
        {
            Silos = membership.CurrentSnapshot.Members.Values.OrderBy(m => m.SiloAddress.ToString(), StringComparer.Ordinal)
                .Select(m => new { Address = m.SiloAddress.ToParsableString(), m.Name, Status = m.Status.ToString() }),
            Scheduler = await q.Scheduler(),
        }));
        api.MapGet("/jobs", (ClusterQueries q) => Read(async () => await q.Jobs()));
        api.MapGet("/jobs/{id}", (string id, ClusterQueries q) => Read(async () => await q.Job(id)));
        api.MapGet("/nodes", (ClusterQueries q) => Read(async () => await q.Nodes()));
        api.MapGet("/arrays", (ClusterQueries q) => Read(async () => await q.Arrays()));
        api.MapGet("/incidents", (ClusterQueries q, int? last) => Read(async () => await q.Incidents(Math.Clamp(last ?? 200, 1, 10_000))));
        api.MapGet("/reliability", (ClusterQueries q, string? devices) => Read(async () => await q.Reliability(ParseDevices(devices))));
    }

    /// <summary>A read that says what went wrong: 404 for an unknown job, 400 for a bad query, 503 while the cluster cannot answer.</summary>
    static async Task<IResult> Read<T>(Func<Task<T>> read)
    {
        try { return Results.Json(await read()); }
        catch (KeyNotFoundException e) { return Results.Json(new { error = e.Message }, statusCode: 404); }
        catch (ArgumentException e) { return Results.Json(new { error = e.Message }, statusCode: 400); }
        catch (Exception e) when (e is TimeoutException or StateStoreUnavailableException or OrleansException)
        {
            return Results.Json(new { error = $"the cluster did not answer ({e.GetBaseException().Message}); retry in a few seconds" }, statusCode: 503);
        }
    }

    static IReadOnlyList<int>? ParseDevices(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(t => int.TryParse(t, out var d) && d is >= 1 and <= 10_000_000 ? d : throw new ArgumentException($"devices: '{t}' is not a count from 1 to 10,000,000"))
            .ToList();
    }
}
