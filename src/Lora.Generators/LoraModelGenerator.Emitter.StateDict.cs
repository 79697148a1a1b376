using System.Collections.Generic;
using System.Linq;
using Lora.Generators.Helpers;
using Lora.Generators.Model;

namespace Lora.Generators;

public sealed partial class LoraModelGenerator
{
    internal static partial class Emitter
    {
        private const string TargetTuple = "(string Path, global::Lora.Modules.LinearLayer Layer)";
        private const string EmbeddingTuple = "(string Path, global::Lora.Modules.EmbeddingLayer Layer)";
        private const string ParameterTuple = "(string Name, global::TorchSharp.Modules.Parameter Parameter)";

        /// <summary>The state-dict file: typed target resolution, trainable parameters, the (parameter ↔ PEFT key) map.</summary>
        public static string EmitStateDict(LoraModelSpec spec)
        {
            var w = new IndentedTextWriter();
            using (OpenType(w, spec))
            {
                for (var i = 0; i < spec.Plans.Length; i++)
                    EmitTargets(w, spec.Plans[i], i);
                EmitTargetDispatch(w, spec);
                EmitParameters(w, spec);
            }

            return w.ToString();
        }

        /// <summary>Does any plan of <paramref name="spec"/> target an embedding table? (Only then are the embedding
        /// members emitted, so models of linear targets only keep the smaller code.)</summary>
        private static bool HasEmbeddings(LoraModelSpec spec) => spec.Plans.Any(HasEmbeddings);

        private static bool HasEmbeddings(LoraPlanSpec plan) => plan.Targets.Any(t => t.IsEmbedding);

        private static void EmitTargets(IndentedTextWriter w, LoraPlanSpec plan, int index)
        {
            var runtimeCheck = plan.Targets.Any(t => t.RuntimeCheck);
            var layers = plan.HasLayersToTransform;
            if (runtimeCheck)
            {
                w.WriteLine($"/// <summary>The Targets regex of adapter <c>{Xml(plan.AdapterName)}</c>, for the layers whose match depends on their index.</summary>");
                w.WriteLine(GeneratedCode);
                w.WriteLine($"private static readonly global::System.Text.RegularExpressions.Regex __LoraTargetsRegex{index} = new global::System.Text.RegularExpressions.Regex({Literal("^(?:" + plan.Pattern + ")$")}, global::System.Text.RegularExpressions.RegexOptions.CultureInvariant);");
                w.WriteLine();
                w.WriteLine("/// <summary>Does the Targets regex fully match the path's leaf name or the path?</summary>");
                w.WriteLine(GeneratedCode);
                w.WriteLine($"private static bool __IsLoraTarget{index}(string path) =>");
                w.Indent();
                w.WriteLine($"__LoraTargetsRegex{index}.IsMatch(path.Substring(path.LastIndexOf('.') + 1)) || __LoraTargetsRegex{index}.IsMatch(path);");
                w.Unindent();
                w.WriteLine();
            }

            if (layers)
            {
                w.WriteLine($"/// <summary>LayersToTransform of adapter <c>{Xml(plan.AdapterName)}</c>.</summary>");
                w.WriteLine(GeneratedCode);
                w.WriteLine($"private static readonly int[] __LoraLayers{index} = new int[] {{ {string.Join(", ", plan.LayersToTransform)} }};");
                w.WriteLine();
            }

            var linears = plan.Targets.Where(t => !t.IsEmbedding).ToList();
            EmitTargetMethod(w, plan, index, linears, "layers", TargetTuple, $"__LoraTargets{index}");
            if (HasEmbeddings(plan))
                EmitTargetMethod(w, plan, index, plan.Targets.Where(t => t.IsEmbedding).ToList(), "embedding tables", EmbeddingTuple, $"__LoraEmbeddingTargets{index}");
        }

        private static void EmitTargetMethod(IndentedTextWriter w, LoraPlanSpec plan, int index, List<LoraTargetSpec> targets, string what, string tuple, string method)
        {
            var layers = plan.HasLayersToTransform;
            w.WriteLine($"/// <summary>The {what} adapter <c>{Xml(plan.AdapterName)}</c> targets (<c>Targets = {Xml(Literal(plan.Pattern))}</c>), ordinal by path:");
            foreach (var target in targets)
                w.WriteLine($"/// <c>{Xml(target.PathTemplate)}</c>{(target.IsConv1D ? " (Conv1D)" : string.Empty)}{(target.RuntimeCheck ? " (index checked at run time)" : string.Empty)}.");
            if (targets.Count == 0)
                w.WriteLine("/// none.");
            w.WriteLine("/// </summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine($"private global::System.Collections.Generic.List<{tuple}> {method}()");
            using (w.Block())
            {
                w.WriteLine($"var targets = new global::System.Collections.Generic.List<{tuple}>();");
                // With LayersToTransform every target is in a numbered layer; the bound is checked where there are targets.
                var checkLayers = layers && targets.Count > 0;
                if (checkLayers)
                    w.WriteLine("var layerCount = 0;");
                var context = new EmitContext(index, checkLayers);
                EmitGroup(w, context, "this", new List<string>(), targets.Select(t => (t, 0)).ToList(), 0);
                if (checkLayers)
                {
                    w.WriteLine($"foreach (var layer in __LoraLayers{index})");
                    using (w.Block())
                    {
                        w.WriteLine("if (layer >= layerCount)");
                        w.Indent();
                        w.WriteLine($"throw new {LoraException}($\"[Lora(AdapterName = {Escape(Literal(plan.AdapterName))})]: LayersToTransform contains {{layer}}, but the model has {{layerCount}} layers.\");");
                        w.Unindent();
                    }
                }

                w.WriteLine("targets.Sort(static (a, b) => string.CompareOrdinal(a.Path, b.Path));");
                w.WriteLine("return targets;");
            }

            w.WriteLine();
        }

        private sealed record EmitContext(int Plan, bool HasLayers);

        /// <summary>
        /// Emits the accesses of <paramref name="items"/> (targets, each with the index of its next unconsumed step) from
        /// <paramref name="receiver"/>: direct field chains become <c>targets.Add</c>; chains through a
        /// <c>ModuleList</c> become one loop per list, shared by every target under it.
        /// </summary>
        private static void EmitGroup(IndentedTextWriter w, EmitContext context, string receiver, List<string> pathParts, List<(LoraTargetSpec Target, int Start)> items, int depth)
        {
            var groups = new List<(string Key, List<(LoraTargetSpec Target, int Start)> Items)>();
            foreach (var item in items)
            {
                var listAt = NextListIndex(item.Target, item.Start);
                var key = listAt < 0 ? "\u0000" + item.Target.PathTemplate : string.Join(".", Enumerable.Range(item.Start, listAt - item.Start + 1).Select(i => item.Target.Steps[i].Member));
                var group = groups.FirstOrDefault(g => g.Key == key);
                if (group.Items is null)
                    groups.Add((key, new List<(LoraTargetSpec, int)> { item }));
                else
                    group.Items.Add(item);
            }

            foreach (var (_, groupItems) in groups)
            {
                var (target, start) = groupItems[0];
                var listAt = NextListIndex(target, start);
                if (listAt < 0)
                {
                    EmitAdd(w, context, receiver, pathParts, target, start);
                    continue;
                }

                var access = Access(receiver, target, start, listAt);
                var parts = new List<string>(pathParts);
                parts.AddRange(Enumerable.Range(start, listAt - start + 1).Select(i => Escape(target.Steps[i].HfName)));
                var list = "list" + depth;
                var i = "i" + depth;
                var element = "item" + depth;
                w.WriteLine($"var {list} = {access};");
                if (context.HasLayers && groupItems.Any(g => g.Target.LayerOrdinal == depth))
                    w.WriteLine($"layerCount = global::System.Math.Max(layerCount, {list}.Count);");
                w.WriteLine($"for (var {i} = 0; {i} < {list}.Count; {i}++)");
                using (w.Block())
                {
                    w.WriteLine($"var {element} = {list}[{i}];");
                    parts.Add("{" + i + "}");
                    EmitGroup(w, context, element, parts, groupItems.Select(g => (g.Target, listAt + 2)).ToList(), depth + 1);
                }
            }
        }

        private static void EmitAdd(IndentedTextWriter w, EmitContext context, string receiver, List<string> pathParts, LoraTargetSpec target, int start)
        {
            var parts = new List<string>(pathParts);
            parts.AddRange(Enumerable.Range(start, target.Steps.Length - start).Select(i => Escape(target.Steps[i].HfName)));
            var path = (parts.Any(p => p.StartsWith("{", System.StringComparison.Ordinal)) ? "$\"" : "\"") + string.Join(".", parts) + "\"";
            var access = Access(receiver, target, start, target.Steps.Length);
            var conditions = new List<string>();
            if (target.RuntimeCheck)
                conditions.Add($"__IsLoraTarget{context.Plan}(path)");
            if (context.HasLayers && target.LayerOrdinal >= 0)
                conditions.Insert(0, $"global::System.Array.IndexOf(__LoraLayers{context.Plan}, i{target.LayerOrdinal}) >= 0");
            var leafNullable = target.Steps[target.Steps.Length - 1].IsNullable;
            if (conditions.Count == 0 && !leafNullable)
            {
                w.WriteLine($"targets.Add(({path}, {access}));");
                return;
            }

            using (w.Block())
            {
                w.WriteLine($"var path = {path};");
                if (leafNullable)
                    conditions.Add($"{access} is {{ }} layer");
                w.WriteLine($"if ({string.Join(" && ", conditions)})");
                w.Indent();
                w.WriteLine($"targets.Add((path, {(leafNullable ? "layer" : access)}));");
                w.Unindent();
            }
        }

        private static int NextListIndex(LoraTargetSpec target, int start)
        {
            for (var i = start; i < target.Steps.Length; i++)
            {
                if (target.Steps[i].IsListIndex)
                    return i - 1;
            }

            return -1;
        }

        /// <summary><c>receiver.A.B</c> for steps [start, end]; nullable intermediate fields are asserted non-null.</summary>
        private static string Access(string receiver, LoraTargetSpec target, int start, int end)
        {
            var text = receiver;
            for (var i = start; i <= end && i < target.Steps.Length; i++)
            {
                var step = target.Steps[i];
                if (step.IsListIndex)
                    break;
                text += "." + LoraModelGenerator.Parser.EscapeIdentifier(step.Member);
                if (step.IsNullable && i < end && i < target.Steps.Length - 1)
                    text += "!";
            }

            return text;
        }

        private static void EmitTargetDispatch(IndentedTextWriter w, LoraModelSpec spec)
        {
            w.WriteLine("/// <summary>The targets of plan <paramref name=\"plan\"/>.</summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine($"private global::System.Collections.Generic.List<{TargetTuple}> __LoraTargets(int plan) => plan switch");
            using (w.Block(";"))
            {
                for (var i = 0; i < spec.Plans.Length; i++)
                    w.WriteLine($"{i} => __LoraTargets{i}(),");
                w.WriteLine("_ => throw new global::System.ArgumentOutOfRangeException(nameof(plan)),");
            }

            w.WriteLine();
            if (HasEmbeddings(spec))
            {
                w.WriteLine("/// <summary>The embedding tables plan <paramref name=\"plan\"/> targets.</summary>");
                w.WriteLine(GeneratedCode);
                w.WriteLine($"private global::System.Collections.Generic.List<{EmbeddingTuple}> __LoraEmbeddingTargets(int plan) => plan switch");
                using (w.Block(";"))
                {
                    for (var i = 0; i < spec.Plans.Length; i++)
                        w.WriteLine(HasEmbeddings(spec.Plans[i]) ? $"{i} => __LoraEmbeddingTargets{i}()," : $"{i} => new global::System.Collections.Generic.List<{EmbeddingTuple}>(),");
                    w.WriteLine("_ => throw new global::System.ArgumentOutOfRangeException(nameof(plan)),");
                }

                w.WriteLine();
                w.WriteLine("/// <summary>The embedding tables the adapter(s) target (LoRA on embeddings, PEFT's <c>lora.Embedding</c>), with their");
                w.WriteLine("/// paths, ordinal by path (null: every declared adapter).</summary>");
                w.WriteLine(GeneratedCode);
                w.WriteLine($"public global::System.Collections.Generic.IReadOnlyList<{EmbeddingTuple}> LoraEmbeddingTargets(string? adapterName = null)");
                using (w.Block())
                {
                    w.WriteLine($"var result = new global::System.Collections.Generic.List<{EmbeddingTuple}>();");
                    w.WriteLine("var seen = new global::System.Collections.Generic.HashSet<string>(global::System.StringComparer.Ordinal);");
                    w.WriteLine("foreach (var (plan, _) in __LoraSelect(adapterName))");
                    using (w.Block())
                    {
                        w.WriteLine("foreach (var target in __LoraEmbeddingTargets(plan))");
                        using (w.Block())
                        {
                            w.WriteLine("if (seen.Add(target.Path))");
                            w.Indent();
                            w.WriteLine("result.Add(target);");
                            w.Unindent();
                        }
                    }

                    w.WriteLine("return result;");
                }

                w.WriteLine();
            }

            w.WriteLine("/// <summary>The layers the adapter(s) target, with their paths (= Hugging Face keys), ordinal by path: typed field");
            w.WriteLine("/// accesses resolved at build time (null: every declared adapter).</summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine($"public global::System.Collections.Generic.IReadOnlyList<{TargetTuple}> LoraTargets(string? adapterName = null)");
            using (w.Block())
            {
                w.WriteLine($"var result = new global::System.Collections.Generic.List<{TargetTuple}>();");
                w.WriteLine("var seen = new global::System.Collections.Generic.HashSet<string>(global::System.StringComparer.Ordinal);");
                w.WriteLine("foreach (var (plan, _) in __LoraSelect(adapterName))");
                using (w.Block())
                {
                    w.WriteLine("foreach (var target in __LoraTargets(plan))");
                    using (w.Block())
                    {
                        w.WriteLine("if (seen.Add(target.Path))");
                        w.Indent();
                        w.WriteLine("result.Add(target);");
                        w.Unindent();
                    }
                }

                w.WriteLine("return result;");
            }

            w.WriteLine();
        }

        private static void EmitParameters(IndentedTextWriter w, LoraModelSpec spec)
        {
            w.WriteLine("/// <summary>The adapter parameters (what an optimizer trains), named as in the model:");
            w.WriteLine("/// <c>{path}.adapters.{adapter}.lora_A.weight</c>, ... Adapters not injected yet contribute nothing.</summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine($"public global::System.Collections.Generic.IReadOnlyList<{ParameterTuple}> LoraParameters(string? adapterName = null)");
            using (w.Block())
            {
                w.WriteLine($"var result = new global::System.Collections.Generic.List<{ParameterTuple}>();");
                w.WriteLine("foreach (var (plan, name) in __LoraSelect(adapterName))");
                using (w.Block())
                {
                    w.WriteLine("foreach (var (path, layer) in __LoraTargets(plan))");
                    using (w.Block())
                    {
                        w.WriteLine("if (!layer.Adapters.TryGetValue(name, out var adapter))");
                        w.Indent();
                        w.WriteLine("continue;");
                        w.Unindent();
                        w.WriteLine("foreach (var (parameterName, parameter) in adapter.named_parameters())");
                        w.Indent();
                        w.WriteLine("result.Add(($\"{path}.{(global::Lora.Modules.LinearLayer.AdaptersName)}.{name}.{parameterName}\", parameter));");
                        w.Unindent();
                    }

                    if (HasEmbeddings(spec))
                    {
                        w.WriteLine();
                        w.WriteLine("foreach (var (path, layer) in __LoraEmbeddingTargets(plan))");
                        using (w.Block())
                        {
                            w.WriteLine("if (!layer.Adapters.TryGetValue(name, out var adapter))");
                            w.Indent();
                            w.WriteLine("continue;");
                            w.Unindent();
                            w.WriteLine("foreach (var (parameterName, parameter) in adapter.named_parameters())");
                            w.Indent();
                            w.WriteLine("result.Add(($\"{path}.{(global::Lora.Modules.EmbeddingLayer.AdaptersName)}.{name}.{parameterName}\", parameter));");
                            w.Unindent();
                        }
                    }
                }

                w.WriteLine("return result;");
            }

            w.WriteLine();
            w.WriteLine("/// <summary>The state-dict map: each adapter parameter's name in this model and its key in PEFT's");
            w.WriteLine("/// <c>adapter_model.safetensors</c> (<c>base_model.model.{path}.lora_A.weight</c>, ...).</summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine("public global::System.Collections.Generic.IReadOnlyList<(string ParameterName, string PeftKey)> AdapterStateDictMap(string? adapterName = null)");
            using (w.Block())
            {
                w.WriteLine("var result = new global::System.Collections.Generic.List<(string ParameterName, string PeftKey)>();");
                w.WriteLine("foreach (var (name, _) in LoraParameters(adapterName))");
                w.Indent();
                w.WriteLine("result.Add((name, global::Lora.Adapters.AdapterKeys.ToPeft(name).PeftKey));");
                w.Unindent();
                w.WriteLine("return result;");
            }

            w.WriteLine();
            w.WriteLine("/// <summary>Freezes the base model and makes the adapter(s) trainable, with what each plan's <c>Bias</c> and");
            w.WriteLine("/// <c>ModulesToSave</c> ask for (the runtime's <c>MarkTrainable(config)</c>: the same parameters <see cref=\"SaveAdapter\"/>");
            w.WriteLine("/// writes). Null: every declared adapter. Returns the trainable parameters, named, in model order.</summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine($"public global::System.Collections.Generic.IReadOnlyList<{ParameterTuple}> MarkLoraTrainable(string? adapterName = null)");
            using (w.Block())
            {
                w.WriteLine("// MarkTrainable freezes everything but one adapter's parameters: collect each adapter's, then set them all.");
                w.WriteLine("var selected = new global::System.Collections.Generic.HashSet<string>(global::System.StringComparer.Ordinal);");
                w.WriteLine("foreach (var (plan, name) in __LoraSelect(adapterName))");
                using (w.Block())
                {
                    w.WriteLine($"foreach (var (parameterName, _) in {Extensions}.MarkTrainable(this, __LoraPlans[plan], name))");
                    w.Indent();
                    w.WriteLine("selected.Add(parameterName);");
                    w.Unindent();
                }

                w.WriteLine();
                w.WriteLine($"var trainable = new global::System.Collections.Generic.List<{ParameterTuple}>();");
                w.WriteLine("foreach (var (parameterName, parameter) in this.named_parameters())");
                using (w.Block())
                {
                    w.WriteLine("parameter.requires_grad = selected.Contains(parameterName);");
                    w.WriteLine("if (parameter.requires_grad)");
                    w.Indent();
                    w.WriteLine("trainable.Add((parameterName, parameter));");
                    w.Unindent();
                }

                w.WriteLine();
                w.WriteLine("return trainable;");
            }
        }
    }
}
