using Lora;
using Lora.Chat;
using Lora.Extensions.AI;
using Microsoft.Extensions.AI;

namespace ServeSample;

/// <summary>The sample: builds the client from the command line, then chats (one <c>--prompt</c>, or lines read from
/// standard input until an empty one) with the streaming API.</summary>
public static class ServeSampleApp
{
    public const string Usage =
        "usage: ServeSample MODEL_DIR [ADAPTER_DIR] [--chat-template FILE] [--prompt TEXT] [--max-tokens N] [--device auto|cpu|cuda]";

    public sealed record Options(string Model, string? Adapter, string? ChatTemplate, string? Prompt, int MaxTokens, string Device);

    public static async Task<int> RunAsync(string[] args, TextReader input, TextWriter output, TextWriter error)
    {
        Options options;
        try
        {
            options = Parse(args);
        }
        catch (ArgumentException e)
        {
            error.WriteLine($"error: {e.Message}");
            error.WriteLine(Usage);
            return 2;
        }

        try
        {
            using var client = CreateClient(options);
            await Chat(client, options, input, output);
            return 0;
        }
        catch (LoraException e)
        {
            error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    /// <summary>The one line an app changes to swap a hosted model for the fine-tuned local one.</summary>
    public static IChatClient CreateClient(Options options) =>
        new LoraChatClient(
            options.Model,
            options.Adapter,
            options.Device,
            chatTemplate: options.ChatTemplate is { } file ? ChatTemplate.LoadFile(file, options.Model) : null);

    /// <summary>Provider-neutral chat code: keeps the history, streams each answer as it is generated.</summary>
    public static async Task Chat(IChatClient client, Options options, TextReader input, TextWriter output)
    {
        var metadata = client.GetService<ChatClientMetadata>();
        List<ChatMessage> history = [new(ChatRole.System, "You are a helpful assistant.")];
        var chatOptions = new ChatOptions { MaxOutputTokens = options.MaxTokens };
        if (options.Prompt is null)
        {
            output.WriteLine($"chatting with {metadata?.DefaultModelId} (empty line to quit)");
        }

        while (true)
        {
            var line = options.Prompt ?? input.ReadLine();
            if (string.IsNullOrEmpty(line))
            {
                break;
            }

            history.Add(new ChatMessage(ChatRole.User, line));
            var reply = new System.Text.StringBuilder();
            ChatFinishReason? finish = null;
            long? tokens = null;
            await foreach (var update in client.GetStreamingResponseAsync(history, chatOptions))
            {
                output.Write(update.Text);
                output.Flush();
                reply.Append(update.Text);
                finish = update.FinishReason ?? finish;
                tokens = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details.OutputTokenCount ?? tokens;
            }

            output.WriteLine();
            output.WriteLine($"[{tokens} tokens, finish: {finish}]");
            history.Add(new ChatMessage(ChatRole.Assistant, reply.ToString()));
            if (options.Prompt is not null)
            {
                break;
            }
        }
    }

    public static Options Parse(string[] args)
    {
        var positional = new List<string>();
        string? template = null, prompt = null;
        var maxTokens = 64;
        var device = "auto";
        for (var i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--chat-template":
                    template = Value();
                    break;
                case "--prompt":
                    prompt = Value();
                    if (prompt.Length == 0)
                    {
                        throw new ArgumentException("--prompt must not be empty");
                    }

                    break;
                case "--max-tokens":
                    var text = Value();
                    if (!int.TryParse(text, out maxTokens) || maxTokens < 1)
                    {
                        throw new ArgumentException($"--max-tokens must be a positive integer, not '{text}'");
                    }

                    break;
                case "--device":
                    device = Value();
                    break;
                case var flag when flag.StartsWith("--", StringComparison.Ordinal):
                    throw new ArgumentException($"unknown option {flag}");
                default:
                    positional.Add(args[i]);
                    break;
            }
        }

        if (positional.Count is < 1 or > 2)
        {
            throw new ArgumentException(positional.Count == 0 ? "MODEL_DIR is required" : $"unexpected argument '{positional[2]}'");
        }

        return new Options(positional[0], positional.Count > 1 ? positional[1] : null, template, prompt, maxTokens, device);
    }
}
