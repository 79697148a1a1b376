using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Lora.Backend;
using Lora.Chat;
using Lora.Generation;
using Lora.Models;
using Lora.Peft;
using Lora.Tokenization;
using Microsoft.Extensions.AI;

namespace Lora.Extensions.AI;

/// <summary>
/// An <see cref="IChatClient"/> over a local Hugging Face model (plus an optional PEFT adapter): the messages are
/// rendered with the model's own chat template (tokenizer_config.json <c>chat_template</c>, as transformers'
/// <c>apply_chat_template(add_generation_prompt=True)</c>), encoded without added special tokens, and completed by
/// <see cref="TokenGenerator"/> until eos, a stop sequence or <see cref="ChatOptions.MaxOutputTokens"/>. An app
/// written against <see cref="IChatClient"/> swaps a hosted model for the fine-tuned one by changing only how the
/// client is built. One generation runs at a time per client.
/// </summary>
public sealed class LoraChatClient : IChatClient
{
    private readonly CausalLM _model;
    private readonly HfTokenizer _tokenizer;
    private readonly ChatTemplate _template;
    private readonly List<int> _stopIds;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly ChatClientMetadata _metadata;

    /// <summary>Loads <paramref name="modelDirectory"/> (and <paramref name="adapterDirectory"/>) on <paramref name="device"/>.
    /// <paramref name="chatTemplate"/> replaces the model's own chat template (for a model that ships none, or one
    /// fine-tuned on another prompt format; <see cref="ChatTemplate.LoadFile"/>).</summary>
    /// <exception cref="LoraException">The model, adapter or chat template is missing or malformed.</exception>
    public LoraChatClient(string modelDirectory, string? adapterDirectory = null, string device = "auto", int defaultMaxOutputTokens = 256, ChatTemplate? chatTemplate = null)
    {
        _tokenizer = HfTokenizer.Load(modelDirectory);
        _template = chatTemplate ?? ChatTemplate.Load(modelDirectory)
            ?? throw new LoraException($"{Path.Combine(modelDirectory, "tokenizer_config.json")}: no 'chat_template' (nor chat_template.jinja); an IChatClient needs the model's chat template (or pass one: chatTemplate: ChatTemplate.LoadFile(FILE, modelDirectory)).");
        var dev = TorchRuntime.Initialize(device);
        _model = CausalLM.FromPretrained(modelDirectory, device: dev);
        try
        {
            if (adapterDirectory is not null)
            {
                PeftAdapter.Load(_model, adapterDirectory);
            }

            _model.eval();
        }
        catch
        {
            _model.Dispose();
            throw;
        }

        _stopIds = [.. _model.Config.EosTokenIds];
        if (_tokenizer.EosTokenId is { } eos && !_stopIds.Contains(eos))
        {
            _stopIds.Add(eos);
        }

        DefaultMaxOutputTokens = defaultMaxOutputTokens;
        var name = Path.GetFileName(Path.GetFullPath(modelDirectory).TrimEnd(Path.DirectorySeparatorChar));
        ModelId = adapterDirectory is null ? name : $"{name}+{Path.GetFileName(Path.GetFullPath(adapterDirectory).TrimEnd(Path.DirectorySeparatorChar))}";
        _metadata = new ChatClientMetadata("lora", new Uri(Path.GetFullPath(modelDirectory)), ModelId);
    }

    public string ModelId { get; }

    public int DefaultMaxOutputTokens { get; }

    /// <summary>The prompt ids the client feeds the model for <paramref name="messages"/> (the chat template's rendering).</summary>
    public int[] PromptTokens(IEnumerable<ChatMessage> messages) =>
        _tokenizer.Encode(_template.Render(messages.Select(m => (m.Role.Value, m.Text)), addGenerationPrompt: true), addSpecialTokens: false);

    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var text = new System.Text.StringBuilder();
        ChatFinishReason? reason = null;
        UsageDetails? usage = null;
        await foreach (var update in GetStreamingResponseAsync(messages, options, cancellationToken).ConfigureAwait(false))
        {
            text.Append(update.Text);
            reason = update.FinishReason ?? reason;
            usage = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details ?? usage;
        }

        return new ChatResponse(new ChatMessage(ChatRole.Assistant, text.ToString()))
        {
            FinishReason = reason,
            Usage = usage,
            ModelId = ModelId,
        };
    }

    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var prompt = PromptTokens(messages);
        var stops = options?.StopSequences?.ToArray() ?? [];
        var generation = new GenerationOptions
        {
            MaxNewTokens = options?.MaxOutputTokens ?? DefaultMaxOutputTokens,
            DoSample = options?.Temperature is > 0,
            Temperature = options?.Temperature is > 0 and var t ? t : 1.0,
            TopP = options?.TopP ?? 1.0,
            TopK = options?.TopK ?? 0,
            Seed = options?.Seed,
            StopTokenIds = _stopIds,
        };
        var channel = Channel.CreateUnbounded<ChatResponseUpdate>();
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        var worker = Task.Run(() =>
        {
            try
            {
                var printed = 0;
                var result = TokenGenerator.Generate(_model, [prompt], generation, _tokenizer.PadTokenId ?? 0, stop: (_, generated) =>
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var text = Decode(generated);
                    var cut = Cut(text, stops);
                    var visible = cut ?? text;
                    if (cut is null && visible.EndsWith('\uFFFD'))
                    {
                        return false; // an incomplete UTF-8 sequence: wait for the next token
                    }

                    if (visible.Length > printed)
                    {
                        channel.Writer.TryWrite(new ChatResponseUpdate(ChatRole.Assistant, visible[printed..]) { ModelId = ModelId });
                        printed = visible.Length;
                    }

                    return cut is not null;
                })[0];
                var final = Cut(Decode(result.Tokens), stops) ?? Decode(result.Tokens);
                var last = new ChatResponseUpdate(ChatRole.Assistant, final.Length > printed ? final[printed..] : "")
                {
                    FinishReason = result.Reason == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop,
                    ModelId = ModelId,
                };
                last.Contents.Add(new UsageContent(new UsageDetails
                {
                    InputTokenCount = prompt.Length,
                    OutputTokenCount = result.Tokens.Count,
                    TotalTokenCount = prompt.Length + result.Tokens.Count,
                }));
                channel.Writer.TryWrite(last);
                channel.Writer.Complete();
            }
            catch (Exception e)
            {
                channel.Writer.Complete(e);
            }
            finally
            {
                _gate.Release();
            }
        }, CancellationToken.None);

        await foreach (var update in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return update;
        }

        await worker.ConfigureAwait(false);
    }

    private string Decode(IEnumerable<int> ids) => _tokenizer.Decode(ids.Where(i => !_stopIds.Contains(i)), skipSpecialTokens: true);

    private static string? Cut(string text, string[] stops)
    {
        var at = stops.Select(s => text.IndexOf(s, StringComparison.Ordinal)).Where(i => i >= 0).DefaultIfEmpty(-1).Min();
        return at < 0 ? null : text[..at];
    }

    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey is not null ? null
        : serviceType == typeof(ChatClientMetadata) ? _metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType == typeof(CausalLM) ? _model
        : null;

    public void Dispose()
    {
        _model.Dispose();
        _gate.Dispose();
    }
}
