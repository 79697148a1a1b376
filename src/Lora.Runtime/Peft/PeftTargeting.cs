using Lora.Models;
using Lora.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Peft;

/// <summary>
/// The targeting rules every layer-adapting method shares (PEFT's <c>BaseTuner.inject_adapter</c> /
/// <c>check_target_module_exists</c>, <c>tuners/tuners_utils.py</c>): <c>target_modules</c> (list, regex,
/// <c>all-linear</c>, or this product's leaf-or-path regex), <c>exclude_modules</c>, <c>modules_to_save</c> and the
/// method's own per-layer restriction (<see cref="TunerConfig.IsTarget"/>), with PEFT's errors made loud: a target
/// that matches nothing, or a module that cannot host the method.
/// </summary>
public static class PeftTargeting
{
    /// <summary>The output head <c>all-linear</c> leaves out when the model does not name one (PEFT's default).</summary>
    public const string OutputHeadPath = "lm_head";

    /// <summary>The hosts <paramref name="config"/> selects on <paramref name="model"/>, ordinal by path.</summary>
    /// <param name="model">The model.</param>
    /// <param name="config">The targets.</param>
    /// <param name="method">The method's display name, for messages.</param>
    /// <param name="cannotHost">Why a selected host cannot carry the method (null: it can).</param>
    /// <exception cref="LoraException">No target set; the targets select a module that is no adapter host or a host
    /// that cannot carry the method; or nothing at all (the message lists the linear layers there are).</exception>
    public static IReadOnlyList<(string Path, IAdapterHost Layer)> Resolve(nn.Module model, TunerConfig config, string method, Func<IAdapterHost, string, string?> cannotHost)
    {
        if (config.TargetModules is null)
            throw new LoraException("target_modules is not set: name the layers to adapt (e.g. q_proj,v_proj), a regex, or all-linear.");
        var modules = BaseModules(model);
        var linears = modules.Where(m => m.Module is IAdapterHost<LinearAdapter>).ToList();
        var allLinear = config.TargetModules.IsAllLinear;
        var outputHead = OutputHead(model);
        var targets = modules
            .Where(m => m.Module is IAdapterHost && (!allLinear || m.Module is IAdapterHost<LinearAdapter>))
            .Where(m => config.IsTarget(m.Path) && !(allLinear && IsOutputHead(m, outputHead)))
            .Select(m => (m.Path, Layer: (IAdapterHost)m.Module))
            .OrderBy(m => m.Path, StringComparer.Ordinal)
            .ToList();

        // PEFT refuses a target that is not a supported layer type (a norm, a whole attention block): so do we.
        if (!allLinear)
        {
            var notHosts = modules
                .Where(m => m.Path.Length > 0 && m.Module is not IAdapterHost && config.IsTarget(m.Path))
                .Select(m => $"{m.Path} ({m.Module.GetType().Name})")
                .ToList();
            if (notHosts.Count > 0)
                throw new LoraException($"target_modules '{config.TargetModules}' selects layers that cannot host {method}: {string.Join(", ", notHosts.Take(5))}. Adaptable layers are the linear projections: {Available(linears.Select(l => l.Path))}.");
        }

        if (targets.Count == 0)
            throw new LoraException($"target_modules '{config.TargetModules}' matches no linear layer. Available: {Available(linears.Select(l => l.Path))}.");
        foreach (var (path, layer) in targets)
        {
            if (cannotHost(layer, path) is { } reason)
                throw new LoraException(reason);
        }

        return targets;
    }

    /// <summary>True when every linear layer at <paramref name="paths"/> stores its weight <c>(in, out)</c>.</summary>
    public static bool AllFanInFanOut(nn.Module model, IReadOnlyCollection<string> paths)
    {
        var linears = model.named_modules().Where(m => paths.Contains(m.name) && m.module is LinearLayer).Select(m => (LinearLayer)m.module).ToList();
        return linears.Count > 0 && linears.All(l => l.FanInFanOut);
    }

    /// <summary>Leaf names of <paramref name="paths"/>, e.g. <c>q_proj, k_proj, ..., lm_head</c>.</summary>
    public static string Available(IEnumerable<string> paths) =>
        string.Join(", ", paths.Select(p => p.Split('.')[^1]).Distinct(StringComparer.Ordinal));

    /// <summary>The modules of the base model: every module except the adapters' own (the contents of each host's
    /// <see cref="AdapterDict{TAdapter}"/>), in <c>named_modules()</c> order.</summary>
    public static IReadOnlyList<(string Path, nn.Module Module)> BaseModules(nn.Module model)
    {
        var result = new List<(string, nn.Module)>();
        string? skipping = null;
        foreach (var (path, module) in model.named_modules())
        {
            if (skipping is not null && path.StartsWith(skipping, StringComparison.Ordinal))
                continue;
            skipping = null;
            if (module is IAdapterDict)
            {
                skipping = path + ".";
                continue;
            }

            result.Add((path, module));
        }

        return result;
    }

    private static nn.Module? OutputHead(nn.Module model) => model is CausalLM causal ? causal.OutputHead : null;

    private static bool IsOutputHead((string Path, nn.Module Module) m, nn.Module? head) =>
        head is null ? m.Path == OutputHeadPath : ReferenceEquals(m.Module, head);
}
