using System.CommandLine;
using Lora.Cli.Commands;

namespace Lora.Cli;

/// <summary>The <c>lora</c> command tree. User errors (<see cref="LoraException"/>) print one line on stderr and
/// exit 1, without a stack trace. Under mpirun, <see cref="Distributed.DataParallel.Finish"/> (Program.cs) then stops
/// the other ranks too.</summary>
public static class LoraCli
{
    public const int UserError = 1;

    public static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        var root = new RootCommand("lora: parameter-efficient fine-tuning of Hugging Face LLMs on TorchSharp.")
        {
            InfoCommand.Create(stdout),
            TokenizeCommand.Create(stdout),
            TemplateCommand.Create(stdout),
            EvalCommand.Create(stdout, stderr),
            GenerateCommand.Create(stdout, stderr),
            MergeCommand.Create(stdout, stderr),
            ExportCommand.Create(stdout, stderr),
            QuantizeCommand.Create(stdout, stderr),
            InspectCommand.Create(stdout, stderr),
            TrainCommand.Create(stdout, stderr),
            RewardCommand.Create(stdout, stderr),
            ScoreCommand.Create(stdout, stderr),
            DpoCommand.Create(stdout, stderr),
            GrpoCommand.Create(stdout, stderr),
            PpoCommand.Create(stdout, stderr),
        };

        var config = new InvocationConfiguration { Output = stdout, Error = stderr, EnableDefaultExceptionHandler = false };
        try
        {
            var parsed = root.Parse(args);
            if (parsed.Errors.Count > 0)
            {
                // One line per problem on stderr, nothing on stdout (so --json consumers never see help text).
                foreach (var error in parsed.Errors)
                    stderr.WriteLine($"error: {error.Message}");
                var command = parsed.CommandResult.Command;
                stderr.WriteLine($"(run 'lora {(command == root ? string.Empty : command.Name + " ")}--help' for the options)");
                return UserError;
            }

            return parsed.Invoke(config);
        }
        catch (LoraException e)
        {
            // Under mpirun every rank reports; the ranks other than 0 say who they are.
            var who = Distributed.DataParallel.Current is { IsRoot: false } group && !e.Message.StartsWith("rank ", StringComparison.Ordinal) ? $"{group}: " : string.Empty;
            stderr.WriteLine($"error: {who}{e.Message}");
            return UserError;
        }
    }
}
