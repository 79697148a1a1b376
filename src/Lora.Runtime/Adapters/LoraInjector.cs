using Lora.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Adapters;

/// <summary>
/// The one place adapters are attached to layers. The dynamic path (<see cref="Inject"/>: a config resolved against
/// the module tree at run time, PEFT style) and the source generator's emitted code (typed field accesses resolved at
/// build time, calling <c>Attach</c>) both end here, so they create identical adapters.
/// </summary>
public static class LoraInjector
{
    /// <summary>The output head that <c>all-linear</c> leaves out, as PEFT does.</summary>
    public const string OutputHeadPath = "lm_head";

    /// <summary>
    /// Adds adapter <paramref name="adapterName"/> to every layer of <paramref name="model"/> that
    /// <paramref name="config"/> targets, and returns their paths (ordinal order).
    /// </summary>
    /// <exception cref="LoraException">The targets match no adaptable layer (the message lists the layers there are),
    /// or match a layer that cannot host LoRA (e.g. a norm).</exception>
    public static IReadOnlyList<string> Inject(nn.Module model, LoraConfig config, string adapterName = "default", LoraInit? init = null)
    {
        var targets = ResolveTargets(model, config);
        var how = init ?? LoraInits.Parse(config.InitLoraWeights);
        foreach (var (path, layer) in targets)
        {
            if (layer is LinearLayer linear)
                Attach(linear, path, config, adapterName, how);
            else
                Attach((EmbeddingLayer)layer, path, config, adapterName, how);
        }

        return targets.Select(t => t.Path).ToList();
    }

    /// <summary>The adaptable layers (linear layers; embeddings when named explicitly) <paramref name="config"/>
    /// selects, with the same errors as <see cref="Inject"/>.</summary>
    public static IReadOnlyList<(string Path, IAdapterHost Layer)> ResolveTargets(nn.Module model, LoraConfig config)
    {
        if (config.TargetModules is null)
            throw new LoraException("target_modules is not set: name the layers to adapt (e.g. q_proj,v_proj), a regex, or all-linear.");
        var modules = model.named_modules().ToList();
        var linears = modules.Where(m => m.module is LinearLayer).Select(m => (Path: m.name, Layer: (LinearLayer)m.module)).ToList();
        var hosts = modules.Where(m => m.module is LinearLayer || (m.module is EmbeddingLayer && !config.TargetModules.IsAllLinear));
        var targets = hosts
            .Where(l => config.IsTarget(l.name) && !(config.TargetModules.IsAllLinear && l.name == OutputHeadPath))
            .Select(l => (Path: l.name, Layer: (IAdapterHost)l.module))
            .OrderBy(l => l.Path, StringComparer.Ordinal)
            .ToList();

        // PEFT refuses a target that is not a supported layer type (a norm, a whole attention block): so do we.
        if (!config.TargetModules.IsAllLinear)
        {
            var notAdaptable = modules
                .Where(m => m.name.Length > 0 && m.module is not IAdapterHost && !AdapterKeys.IsAdapterParameter(m.name + ".")
                    && !m.name.EndsWith("." + LinearLayer.AdaptersName, StringComparison.Ordinal) && config.IsTarget(m.name))
                .Select(m => $"{m.name} ({m.module.GetType().Name})")
                .ToList();
            if (notAdaptable.Count > 0)
                throw new LoraException($"target_modules '{config.TargetModules}' selects layers that cannot host LoRA: {string.Join(", ", notAdaptable.Take(5))}. Adaptable layers are the linear projections: {Available(linears)}.");
        }

        if (targets.Count == 0)
            throw new LoraException($"target_modules '{config.TargetModules}' matches no linear layer. Available: {Available(linears)}.");
        var doraEmbedding = targets.FirstOrDefault(t => t.Layer is EmbeddingLayer && config.UseDora);
        if (doraEmbedding.Path is not null)
            throw new LoraException($"DoRA on an embedding ({doraEmbedding.Path}) is not supported; target linear layers only or turn DoRA off.");
        return targets;
    }

    /// <summary>Adds one adapter to <paramref name="layer"/> (at <paramref name="path"/>, for rank/alpha patterns):
    /// fp32 factors on the layer's device, DoRA magnitude initialised to ‖W + ΔW‖ when enabled.</summary>
    public static LoraAdapter Attach(LinearLayer layer, string path, LoraConfig config, string adapterName, LoraInit init)
    {
        var (r, alpha) = config.RankAndAlphaFor(path);
        var adapter = new LoraAdapter(layer.InFeatures, layer.OutFeatures, r, alpha, config.UseRsLora, config.LoraDropout,
            config.LoraBiasTerm, init, layer.Weight.device, ScalarType.Float32);
        layer.AddAdapter(adapterName, adapter);
        if (config.UseDora)
            layer.EnableDora(adapterName);
        return adapter;
    }

    /// <summary>Adds one LoRA embedding adapter to <paramref name="layer"/> (A = 0, B ~ N(0, 1), as PEFT).</summary>
    public static LoraEmbeddingAdapter Attach(EmbeddingLayer layer, string path, LoraConfig config, string adapterName, LoraInit init)
    {
        var (r, alpha) = config.RankAndAlphaFor(path);
        var adapter = new LoraEmbeddingAdapter(layer.NumEmbeddings, layer.EmbeddingDim, r, alpha, config.UseRsLora, init, layer.Weight.device);
        return layer.AddAdapter(adapterName, adapter);
    }

    /// <summary>Leaf names of the linear layers, e.g. <c>q_proj, k_proj, ..., lm_head</c>.</summary>
    public static string Available(IEnumerable<(string Path, LinearLayer Layer)> linears) =>
        string.Join(", ", linears.Select(l => l.Path.Split('.')[^1]).Distinct(StringComparer.Ordinal));
}
