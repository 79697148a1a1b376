using System.Collections.Generic;
using System.Linq;
using Lora.Generators.Helpers;
using Lora.Generators.Model;

namespace Lora.Generators;

public sealed partial class LoraModelGenerator
{
    internal static partial class Emitter
    {
        /// <summary>The targets file: the typed target list resolved at build time, and the state-dict map over it.</summary>
        public static string EmitTargets(PeftModelSpec spec)
        {
            var w = new IndentedTextWriter();
            using (OpenType(w, spec, implement: false))
            {
                for (var i = 0; i < spec.Plans.Length; i++)
                    EmitPlanTargets(w, spec.Plans[i], i);
                EmitTargetDispatch(w, spec);
                EmitStateDictMap(w);
            }

            return w.ToString();
        }

        private static void EmitPlanTargets(IndentedTextWriter w, PlanSpec plan, int index)
        {
            if (plan.ModelLevel)
            {
                w.WriteLine($"/// <summary>Adapter <c>{Xml(plan.AdapterName)}</c> is a prompt-learning adapter: attached to the model (<c>prompt_encoder</c>), on no layer.</summary>");
                w.WriteLine(GeneratedCode);
                w.WriteLine($"private global::System.Collections.Generic.List<{TargetTuple}> __AdapterTargets{index}() => new global::System.Collections.Generic.List<{TargetTuple}>();");
                w.WriteLine();
                return;
            }

            var runtimeCheck = plan.Targets.Any(t => t.RuntimeCheck);
            if (runtimeCheck)
            {
                w.WriteLine($"/// <summary>The Targets regex of adapter <c>{Xml(plan.AdapterName)}</c>, for the layers whose match depends on their index.</summary>");
                w.WriteLine(GeneratedCode);
                w.WriteLine($"private static readonly global::System.Text.RegularExpressions.Regex __TargetsRegex{index} = new global::System.Text.RegularExpressions.Regex({Literal("^(?:" + plan.Pattern + ")$")}, global::System.Text.RegularExpressions.RegexOptions.CultureInvariant);");
                w.WriteLine();
                w.WriteLine("/// <summary>Does the Targets regex fully match the path's leaf name or the path?</summary>");
                w.WriteLine(GeneratedCode);
                w.WriteLine($"private static bool __IsTarget{index}(string path) =>");
                w.Indent();
                w.WriteLine($"__TargetsRegex{index}.IsMatch(path.Substring(path.LastIndexOf('.') + 1)) || __TargetsRegex{index}.IsMatch(path);");
                w.Unindent();
                w.WriteLine();
            }

            if (plan.HasLayersToTransform)
            {
                w.WriteLine($"/// <summary>LayersToTransform of adapter <c>{Xml(plan.AdapterName)}</c>.</summary>");
                w.WriteLine(GeneratedCode);
                w.WriteLine($"private static readonly int[] __Layers{index} = new int[] {{ {string.Join(", ", plan.LayersToTransform)} }};");
                w.WriteLine();
            }

            var targets = plan.Targets.ToList();
            w.WriteLine($"/// <summary>The layers adapter <c>{Xml(plan.AdapterName)}</c> targets (<c>Targets = {Xml(Literal(plan.Pattern))}</c>), ordinal by path:");
            foreach (var target in targets)
                w.WriteLine($"/// <c>{Xml(target.PathTemplate)}</c>{(target.RuntimeCheck ? " (index checked at run time)" : string.Empty)}.");
            w.WriteLine("/// </summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine($"private global::System.Collections.Generic.List<{TargetTuple}> __AdapterTargets{index}()");
            using (w.Block())
            {
                w.WriteLine($"var targets = new global::System.Collections.Generic.List<{TargetTuple}>();");
                // With LayersToTransform every target is in a numbered layer; the bound is checked where there are targets.
                var checkLayers = plan.HasLayersToTransform && targets.Count > 0;
                if (checkLayers)
                    w.WriteLine("var layerCount = 0;");
                var context = new EmitContext(index, checkLayers);
                EmitGroup(w, context, "this", new List<string>(), targets.Select(t => (t, 0)).ToList(), 0);
                if (checkLayers)
                {
                    w.WriteLine($"foreach (var layer in __Layers{index})");
                    using (w.Block())
                    {
                        w.WriteLine("if (layer >= layerCount)");
                        w.Indent();
                        w.WriteLine($"throw new {LoraException}($\"[{Escape(plan.AttributeDisplay)}(AdapterName = {Escape(Literal(plan.AdapterName))})]: LayersToTransform contains {{layer}}, but the model has {{layerCount}} layers.\");");
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
        private static void EmitGroup(IndentedTextWriter w, EmitContext context, string receiver, List<string> pathParts, List<(TargetSpec Target, int Start)> items, int depth)
        {
            var groups = new List<(string Key, List<(TargetSpec Target, int Start)> Items)>();
            foreach (var item in items)
            {
                var listAt = NextListIndex(item.Target, item.Start);
                var key = listAt < 0 ? "\u0000" + item.Target.PathTemplate : string.Join(".", Enumerable.Range(item.Start, listAt - item.Start + 1).Select(i => item.Target.Steps[i].Member));
                var group = groups.FirstOrDefault(g => g.Key == key);
                if (group.Items is null)
                    groups.Add((key, new List<(TargetSpec, int)> { item }));
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

        private static void EmitAdd(IndentedTextWriter w, EmitContext context, string receiver, List<string> pathParts, TargetSpec target, int start)
        {
            var parts = new List<string>(pathParts);
            parts.AddRange(Enumerable.Range(start, target.Steps.Length - start).Select(i => Escape(target.Steps[i].HfName)));
            var path = (parts.Any(p => p.StartsWith("{", System.StringComparison.Ordinal)) ? "$\"" : "\"") + string.Join(".", parts) + "\"";
            var access = Access(receiver, target, start, target.Steps.Length);
            var conditions = new List<string>();
            if (target.RuntimeCheck)
                conditions.Add($"__IsTarget{context.Plan}(path)");
            if (context.HasLayers && target.LayerOrdinal >= 0)
                conditions.Insert(0, $"global::System.Array.IndexOf(__Layers{context.Plan}, i{target.LayerOrdinal}) >= 0");
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

        private static int NextListIndex(TargetSpec target, int start)
        {
            for (var i = start; i < target.Steps.Length; i++)
            {
                if (target.Steps[i].IsListIndex)
                    return i - 1;
            }

            return -1;
        }

        /// <summary><c>receiver.A.B</c> for steps [start, end]; nullable intermediate fields are asserted non-null.</summary>
        private static string Access(string receiver, TargetSpec target, int start, int end)
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

        private static void EmitTargetDispatch(IndentedTextWriter w, PeftModelSpec spec)
        {
            w.WriteLine("/// <summary>The targets of plan <paramref name=\"plan\"/>.</summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine($"private global::System.Collections.Generic.List<{TargetTuple}> __AdapterTargets(int plan) => plan switch");
            using (w.Block(";"))
            {
                for (var i = 0; i < spec.Plans.Length; i++)
                    w.WriteLine($"{i} => __AdapterTargets{i}(),");
                w.WriteLine("_ => throw new global::System.ArgumentOutOfRangeException(nameof(plan)),");
            }

            w.WriteLine();
            w.WriteLine("/// <summary>The plan of <paramref name=\"adapterName\"/>: the declared adapter of that name, or the only plan.</summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine("private static int __PlanIndex(string adapterName)");
            using (w.Block())
            {
                w.WriteLine("switch (adapterName)");
                using (w.Block())
                {
                    for (var i = 0; i < spec.Plans.Length; i++)
                        w.WriteLine($"case {Literal(spec.Plans[i].AdapterName)}: return {i};");
                }

                if (spec.Plans.Length == 1)
                    w.WriteLine("return 0;");
                else
                    w.WriteLine($"throw new {LoraException}($\"{Escape(SimpleName(spec))} declares no adapter named '{{adapterName}}' (declared: {Escape(string.Join(", ", spec.Plans.Select(p => p.AdapterName)))}).\");");
            }

            w.WriteLine();
            w.WriteLine("/// <summary>The layers the declared adapter(s) target, with their paths (= Hugging Face keys), ordinal by path: typed");
            w.WriteLine("/// field accesses resolved at build time (null: every declared adapter's).</summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine($"public {TargetList} AdapterTargets(string? adapterName = null)");
            using (w.Block())
            {
                w.WriteLine("if (adapterName is not null)");
                w.Indent();
                w.WriteLine("return __AdapterTargets(__PlanIndex(adapterName));");
                w.Unindent();
                if (spec.Plans.Length == 1)
                {
                    w.WriteLine("return __AdapterTargets(0);");
                }
                else
                {
                    w.WriteLine($"var result = new global::System.Collections.Generic.List<{TargetTuple}>();");
                    w.WriteLine("var seen = new global::System.Collections.Generic.HashSet<string>(global::System.StringComparer.Ordinal);");
                    w.WriteLine($"for (var plan = 0; plan < {spec.Plans.Length}; plan++)");
                    using (w.Block())
                    {
                        w.WriteLine("foreach (var target in __AdapterTargets(plan))");
                        using (w.Block())
                        {
                            w.WriteLine("if (seen.Add(target.Path))");
                            w.Indent();
                            w.WriteLine("result.Add(target);");
                            w.Unindent();
                        }
                    }

                    w.WriteLine("result.Sort(static (a, b) => string.CompareOrdinal(a.Path, b.Path));");
                    w.WriteLine("return result;");
                }
            }

            w.WriteLine();
        }

        private static void EmitStateDictMap(IndentedTextWriter w)
        {
            w.WriteLine("/// <summary>The state-dict map: each adapter parameter's name in this model (<c>{path}.adapters.{adapter}.{name}</c>) and");
            w.WriteLine("/// its key in PEFT's <c>adapter_model.safetensors</c> (<c>base_model.model.{path}.{name}</c>), over the typed targets.");
            w.WriteLine("/// Adapters not injected yet contribute nothing.</summary>");
            w.WriteLine(GeneratedCode);
            w.WriteLine($"public {KeyList} AdapterStateDictMap(string? adapterName = null)");
            using (w.Block())
            {
                w.WriteLine("var result = new global::System.Collections.Generic.List<(string ParameterName, string PeftKey)>();");
                w.WriteLine($"foreach (var plan in {Plans}.SelectPlans(this, adapterName))");
                using (w.Block())
                {
                    w.WriteLine("foreach (var (path, layer) in __AdapterTargets(__PlanIndex(plan.AdapterName)))");
                    using (w.Block())
                    {
                        w.WriteLine("if (!layer.HasAdapter(plan.AdapterName))");
                        w.Indent();
                        w.WriteLine("continue;");
                        w.Unindent();
                        w.WriteLine("foreach (var (name, _) in layer.GetAdapter(plan.AdapterName).named_parameters())");
                        w.Indent();
                        w.WriteLine("result.Add((global::Lora.Peft.AdapterKeys.ModelName(path, plan.AdapterName, name), global::Lora.Peft.AdapterKeys.PeftKey(path, name)));");
                        w.Unindent();
                    }
                }

                w.WriteLine("return result;");
            }
        }
    }
}
