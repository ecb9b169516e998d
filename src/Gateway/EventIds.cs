namespace Gateway;

/// <summary>Every log event id the gateway uses, in one place.</summary>
internal static class EventIds
{
    public const int Started = 1;
    public const int DemoKey = 2;
    public const int GeneratedSecret = 3;
    public const int ConfigReloaded = 4;
    public const int ConfigReloadRefused = 5;
    public const int WorkerAdded = 10;
    public const int WorkerRemoved = 11;
    public const int WorkerHealthChanged = 12;
    public const int CircuitOpened = 13;
    public const int DnsResolved = 14;
    public const int DnsFailed = 15;
    public const int KubernetesSynced = 16;
    public const int KubernetesFailed = 17;
    public const int AttemptFailed = 20;
    public const int StreamFailed = 21;
    public const int NoWorker = 22;
    public const int Draining = 30;
    public const int AgentDecision = 70;
    public const int AgentHintFailed = 71;
    public const int AgentPinDropped = 72;
    public const int AgentPrefetchFailed = 73;
}
