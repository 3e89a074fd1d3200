<#
.SYNOPSIS
    Registers rappel's Windows Task Scheduler tasks and creates its data folder.

.DESCRIPTION
    install.ps1: installs rappel's scheduled tasks on Windows. It

      1. checks that C:\Program Files\rappel\rappel.exe exists (copy it there first);
      2. creates %ProgramData%\rappel (rappel.toml and rappel.db through `rappel init`,
         outbox\, logs\, credentials\), readable only by Administrators, SYSTEM, the
         task account and, with -AppUser, the host application's account;
      3. registers every rappel-*.xml in this script's folder as the task
         \rappel\<file name>, run by -User (Local Service unless told otherwise).

    It never overwrites rappel.toml or rappel.db, and running it again updates
    the tasks (-Force). -Uninstall removes the tasks and keeps the data folder.

    Install: copy rappel.exe to C:\Program Files\rappel\, then from this folder,
    in an elevated PowerShell (Run as administrator):

        powershell -ExecutionPolicy Bypass -File .\install.ps1

    README.md in this folder describes the layout and the next steps.

.PARAMETER User
    The account the tasks run as. Default: NT AUTHORITY\LocalService, which
    needs no password. NT AUTHORITY\NetworkService and SYSTEM need none
    either; any other account is asked for its password (it must have the
    "Log on as a batch job" right).

.PARAMETER AppUser
    The host application's account, if it writes the same database: it is
    given the same access to the data folder as -User.

.PARAMETER Uninstall
    Removes the tasks (and the \rappel\ task folder once empty). The data
    folder is kept.

.EXAMPLE
    .\install.ps1

.EXAMPLE
    .\install.ps1 -User 'SHOP\svc-rappel' -AppUser 'IIS APPPOOL\Atelier'

.EXAMPLE
    .\install.ps1 -Uninstall
#>
#Requires -RunAsAdministrator
[CmdletBinding()]
param(
    [string]$User = 'NT AUTHORITY\LocalService',
    [string]$AppUser = '',
    [switch]$Uninstall
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$TaskPath = '\rappel\'
$Exe = Join-Path $env:ProgramFiles 'rappel\rappel.exe'
$DataDir = Join-Path $env:ProgramData 'rappel'
$Config = Join-Path $DataDir 'rappel.toml'
$Db = Join-Path $DataDir 'rappel.db'
$Tasks = @(Get-ChildItem -LiteralPath $PSScriptRoot -Filter 'rappel-*.xml' | Sort-Object Name)
if ($Tasks.Count -eq 0) {
    throw "no rappel-*.xml task files in $PSScriptRoot"
}

if ($Uninstall) {
    foreach ($task in $Tasks) {
        $name = $task.BaseName
        if (Get-ScheduledTask -TaskPath $TaskPath -TaskName $name -ErrorAction SilentlyContinue) {
            Unregister-ScheduledTask -TaskPath $TaskPath -TaskName $name -Confirm:$false
            Write-Host "removed task $TaskPath$name"
        }
    }
    try {
        # Fails, harmlessly, while the folder holds other tasks.
        $scheduler = New-Object -ComObject 'Schedule.Service'
        $scheduler.Connect()
        $scheduler.GetFolder('\').DeleteFolder('rappel', 0)
    } catch {
        Write-Verbose "task folder $TaskPath kept: $_"
    }
    Write-Host "$DataDir (configuration, database, outbox, logs, credentials) is kept; delete it yourself if you mean to."
    return
}

# The SID of an account; the built-in service accounts by their usual names
# whatever the system's language.
function Get-AccountSid([string]$Name) {
    $builtIn = @{
        'LocalService' = 'S-1-5-19'; 'Local Service' = 'S-1-5-19'
        'NetworkService' = 'S-1-5-20'; 'Network Service' = 'S-1-5-20'
        'System' = 'S-1-5-18'; 'LocalSystem' = 'S-1-5-18'
    }
    $short = $Name -replace '^NT AUTHORITY\\', ''
    if ($builtIn.ContainsKey($short)) {
        return $builtIn[$short]
    }
    $account = New-Object System.Security.Principal.NTAccount($Name)
    return $account.Translate([System.Security.Principal.SecurityIdentifier]).Value
}

# Replaces a folder's inherited permissions with `$Grants` (icacls syntax);
# files and folders created in it later inherit them.
function Set-FolderAccess([string]$Path, [string[]]$Grants) {
    & icacls.exe $Path /inheritance:r /grant:r @Grants | Out-Null
    if ($LASTEXITCODE -ne 0) {
        throw "icacls $Path failed (exit $LASTEXITCODE)"
    }
}

if (-not (Test-Path -LiteralPath $Exe -PathType Leaf)) {
    throw "$Exe not found: copy rappel.exe there first (the tasks run it from that path)"
}

$Sid = Get-AccountSid $User
$ServiceAccount = @('S-1-5-18', 'S-1-5-19', 'S-1-5-20') -contains $Sid
$Password = $null
if (-not $ServiceAccount) {
    $credential = Get-Credential -UserName $User -Message "Password of $User, the account that runs rappel's tasks"
    if (-not $credential) {
        throw "no password given for $User"
    }
    $Password = $credential.GetNetworkCredential().Password
}

# %ProgramData%\rappel: Administrators and SYSTEM have full control, the task
# account (and the application's) may modify, nobody else may read: the
# configuration may hold secrets and the database holds people's addresses.
$access = [ordered]@{ 'S-1-5-32-544' = 'F'; 'S-1-5-18' = 'F' }
$writers = @($Sid)
if ($AppUser) {
    $writers += Get-AccountSid $AppUser
}
foreach ($writer in $writers) {
    if (-not $access.Contains($writer)) {
        $access[$writer] = 'M'
    }
}
New-Item -ItemType Directory -Force -Path $DataDir | Out-Null
Set-FolderAccess $DataDir @($access.Keys | ForEach-Object { "*${_}:(OI)(CI)$($access[$_])" })
foreach ($sub in 'outbox', 'logs') {
    New-Item -ItemType Directory -Force -Path (Join-Path $DataDir $sub) | Out-Null
}
# credentials\: secret files for the config's `*_file` keys, readable by the task account only.
$Credentials = Join-Path $DataDir 'credentials'
New-Item -ItemType Directory -Force -Path $Credentials | Out-Null
$secretAccess = @('*S-1-5-32-544:(OI)(CI)F', '*S-1-5-18:(OI)(CI)F')
if ($Sid -ne 'S-1-5-18') {
    $secretAccess += "*${Sid}:(OI)(CI)RX"
}
Set-FolderAccess $Credentials $secretAccess

if (Test-Path -LiteralPath $Config) {
    Write-Host "$Config exists: kept"
} elseif (Test-Path -LiteralPath $Db) {
    Write-Warning "$Db exists but $Config does not: write $Config yourself (see examples\rappel.toml)"
} else {
    & $Exe init $DataDir
    if ($LASTEXITCODE -ne 0) {
        throw "rappel init $DataDir failed (exit $LASTEXITCODE)"
    }
}

# The task files name the usual paths; adjust them where this machine differs.
$configArgument = if ($Config -match '\s') { "--config `"$Config`"" } else { "--config $Config" }
foreach ($task in $Tasks) {
    $xml = Get-Content -Raw -Encoding UTF8 -LiteralPath $task.FullName
    $xml = $xml.Replace('--config C:\ProgramData\rappel\rappel.toml',
        [System.Security.SecurityElement]::Escape($configArgument))
    $xml = $xml.Replace('C:\Program Files\rappel\rappel.exe', [System.Security.SecurityElement]::Escape($Exe))
    $xml = $xml.Replace('C:\ProgramData\rappel', [System.Security.SecurityElement]::Escape($DataDir))
    $params = @{ TaskPath = $TaskPath; TaskName = $task.BaseName; Force = $true }
    if ($ServiceAccount) {
        # A service account needs no password: name it in the task's principal.
        $params.Xml = $xml.Replace('<UserId>S-1-5-19</UserId>', "<UserId>$Sid</UserId>")
    } else {
        $params.Xml = $xml
        $params.User = $User
        $params.Password = $Password
    }
    Register-ScheduledTask @params | Out-Null
    Write-Host "registered task $TaskPath$($task.BaseName) (runs as $User)"
}

Write-Host @"

Next:
  1. Edit $Config (database, timezone, [email], ...). Put secrets in files under
     $Credentials and name them with ``*_file`` keys, e.g.
     password_file = "credentials/smtp-password" (relative to rappel.toml).
  2. Check it:  & '$Exe' --config '$Config' config check --connect
  3. Try a task: Start-ScheduledTask -TaskPath '$TaskPath' -TaskName 'rappel-deliver'
     then Get-ScheduledTaskInfo -TaskPath '$TaskPath' -TaskName 'rappel-deliver'
     (LastTaskResult is rappel's exit code: 0 ok, 75 retrying, 78 configuration).
"@
