using Lora.Cli;

return LoraCli.Run(args, Console.Out, Console.Error);
