from langchain_irl.cli.main import main

raise SystemExit(main())
