// Command temporal-dev-server runs Temporal's four services in one process on an
// in-memory SQLite store, configured as `temporal server start-dev` configures it
// (the CLI itself cannot be built from the module proxy). The frontend listens on
// -port; its HTTP API and the history, matching and worker services take the
// next four ports. Unlike start-dev it serves no UI and no Prometheus endpoint
// (metrics are off), which the benchmark does not need.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"

	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	"go.temporal.io/server/common/dynamicconfig"
	"go.temporal.io/server/common/log"
	"go.temporal.io/server/common/membership/static"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	"go.temporal.io/server/common/primitives"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"
)

const ip = "127.0.0.1"

func main() {
	port := flag.Int("port", 7233, "frontend gRPC port; the next four ports are used too")
	namespace := flag.String("namespace", "default", "namespace to create")
	logLevel := flag.String("log-level", "warn", "server log level")
	version := flag.Bool("version", false, "print the Go and server module versions as JSON and exit")
	flag.Parse()
	if *version {
		server := "unknown"
		if info, ok := debug.ReadBuildInfo(); ok {
			for _, dep := range info.Deps {
				if dep.Path == "go.temporal.io/server" {
					server = dep.Version
				}
			}
		}
		fmt.Printf("{\"server\": %q, \"go\": %q}\n", server, runtime.Version())
		return
	}
	if err := run(*port, *namespace, *logLevel); err != nil {
		fmt.Fprintln(os.Stderr, "temporal-dev-server:", err)
		os.Exit(1)
	}
}

func run(port int, namespace, logLevel string) error {
	addr := func(p int) string { return fmt.Sprintf("%s:%d", ip, p) }
	sql := &config.SQL{
		PluginName:        sqliteplugin.PluginName,
		DatabaseName:      fmt.Sprintf("temporal-%d-%d", port, os.Getpid()),
		ConnectAttributes: map[string]string{"mode": "memory", "cache": "shared"},
	}
	ns, err := sqliteschema.NewNamespaceConfig("active", namespace, false, nil)
	if err != nil {
		return err
	}
	if err := sqliteschema.CreateNamespaces(sql, ns); err != nil {
		return err
	}

	var conf config.Config
	conf.Global.Membership.MaxJoinDuration = 30 * time.Second
	conf.Global.Membership.BroadcastAddress = ip
	conf.Persistence.DefaultStore = "sqlite-default"
	conf.Persistence.VisibilityStore = "sqlite-default"
	conf.Persistence.NumHistoryShards = 1
	conf.Persistence.DataStores = map[string]config.DataStore{"sqlite-default": {SQL: sql}}
	conf.ClusterMetadata = &cluster.Config{
		FailoverVersionIncrement: 10,
		MasterClusterName:        "active",
		CurrentClusterName:       "active",
		ClusterInformation: map[string]cluster.ClusterInformation{"active": {
			Enabled:                true,
			InitialFailoverVersion: 1,
			RPCAddress:             addr(port),
			HTTPAddress:            addr(port + 1),
			ClusterID:              primitives.NewUUID().String(),
		}},
	}
	conf.DCRedirectionPolicy.Policy = "noop"
	conf.Archival.History.State = "disabled"
	conf.Archival.Visibility.State = "disabled"
	conf.NamespaceDefaults.Archival.History.State = "disabled"
	conf.NamespaceDefaults.Archival.Visibility.State = "disabled"
	conf.PublicClient.HostPort = addr(port)
	conf.Services = map[string]config.Service{}
	hosts := map[primitives.ServiceName]static.Hosts{}
	for i, name := range []primitives.ServiceName{
		primitives.FrontendService, primitives.HistoryService,
		primitives.MatchingService, primitives.WorkerService,
	} {
		var service config.Service
		service.RPC.BindOnIP = ip
		service.RPC.GRPCPort = port
		if i == 0 {
			service.RPC.HTTPPort = port + 1
		} else {
			service.RPC.GRPCPort = port + 1 + i
		}
		conf.Services[string(name)] = service
		hosts[name] = static.SingleLocalHost(addr(service.RPC.GRPCPort))
	}

	// The dynamic config `temporal server start-dev` sets.
	dynamic := dynamicconfig.StaticClient{
		dynamicconfig.HistoryCacheHostLevelMaxSize.Key():                 8096,
		dynamicconfig.FrontendMaxNamespaceVisibilityRPSPerInstance.Key(): 100,
		dynamicconfig.ForceSearchAttributesCacheRefreshOnRead.Key():      true,
		dynamicconfig.ForceNexusEndpointRefreshOnRead.Key():              true,
		dynamicconfig.FrontendPersistenceMaxQPS.Key():                    10000,
		dynamicconfig.HistoryPersistenceMaxQPS.Key():                     45000,
	}

	server, err := temporal.NewServer(
		temporal.WithConfig(&conf),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithStaticHosts(hosts),
		temporal.WithLogger(log.NewZapLogger(log.BuildZapLogger(log.Config{Level: logLevel}))),
		temporal.WithDynamicConfigClient(dynamic),
	)
	if err != nil {
		return err
	}
	if err := server.Start(); err != nil {
		return err
	}
	fmt.Printf("{\"frontend\": %q}\n", addr(port))
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	return server.Stop()
}
